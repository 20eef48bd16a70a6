//! `--config FILE`: a subcommand's flags from a TOML file, for services run by a supervisor.
//!
//! A key is a flag's long name (`max-jobs`, or `max_jobs`), a value what the flag takes: a
//! string or number, `true` for a switch, an array for a flag given several times:
//!
//! ```toml
//! from = "verify@probe.example.com"
//! listen = "0.0.0.0:8025"
//! dns-server = ["127.0.0.1:53"]
//! allow-private-mx = false
//! ```
//!
//! What the file says is added to the command line before it is parsed, unless the command
//! line already gives that flag or its environment variable is set: a flag beats the
//! environment, which beats the file. An unknown key is an error that names it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::CommandFactory;

/// The arguments with the settings of the subcommand's `--config` file (or `MXPROBE_CONFIG`)
/// added. Arguments without a config file come back as they are.
pub fn expand<C: CommandFactory>(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(subcommand) = args.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return Ok(args);
    };
    let root = C::command();
    let Some(command) = root.find_subcommand(&subcommand) else {
        return Ok(args);
    };
    if !command
        .get_arguments()
        .any(|arg| arg.get_long() == Some("config"))
    {
        return Ok(args);
    }
    let Some(path) =
        config_path(&args).or_else(|| std::env::var_os("MXPROBE_CONFIG").map(PathBuf::from))
    else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("--config: cannot read {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {}: not TOML: {e}", path.display()))?;
    let mut added: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(format!(
                "--config {}: unknown setting {key:?} (the settings are the flags of `mxprobe \
                 {subcommand} --help`, without their dashes)",
                path.display()
            ));
        };
        let given = args.iter().skip(2).any(|a| {
            a.to_str()
                .is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
        });
        let in_environment = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some());
        if given || in_environment {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                toml::Value::Boolean(true) => {
                    added.push(format!("--{long}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => {
                    return Err(format!(
                        "--config {}: {key} = {other}: give a string, a number, true or an array",
                        path.display()
                    ));
                }
            };
            added.push(format!("--{long}").into());
            added.push(text.into());
        }
    }
    let mut expanded = args;
    expanded.splice(2..2, added);
    Ok(expanded)
}

/// The value of `--config FILE` or `--config=FILE` among the arguments.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut rest = args.iter().skip(2);
    while let Some(arg) = rest.next() {
        let arg = arg.to_str()?;
        if arg == "--config" {
            return rest.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("mxprobe-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_fills_in_what_the_command_line_does_not_say() {
        let path = file(
            "serve.toml",
            "from = \"probe@probe.test\"\nmax_jobs = 2\ndns-server = [\"127.0.0.1:53\", \"127.0.0.2:5353\"]\nallow-private-mx = true\nno-auth = false\nrate-limit = 7\n",
        );
        let given = args(&[
            "mxprobe",
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--max-jobs",
            "9",
        ]);
        let expanded = expand::<Cli>(given).unwrap();
        let text: Vec<&str> = expanded.iter().map(|a| a.to_str().unwrap()).collect();
        // In the file's keys' sorted order, before the command line's own.
        assert_eq!(
            text[2..],
            [
                "--allow-private-mx",
                "--dns-server",
                "127.0.0.1:53",
                "--dns-server",
                "127.0.0.2:5353",
                "--from",
                "probe@probe.test",
                "--rate-limit",
                "7",
                "--config",
                path.to_str().unwrap(),
                "--max-jobs",
                "9"
            ]
        );
        assert!(Cli::try_parse_from(&expanded).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    /// The example in contrib/ is a valid configuration.
    #[test]
    fn the_contrib_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/serve.toml");
        let expanded = expand::<Cli>(args(&["mxprobe", "serve", "--config", path])).unwrap();
        assert!(expanded.len() > 20, "{expanded:?}");
        Cli::try_parse_from(&expanded).unwrap();
    }

    /// So is the worker's.
    #[test]
    fn the_contrib_worker_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/worker.toml");
        let given = args(&[
            "mxprobe",
            "worker",
            "--config",
            path,
            "--source-ip",
            "192.0.2.25",
        ]);
        let expanded = expand::<Cli>(given).unwrap();
        assert!(expanded.len() > 20, "{expanded:?}");
        Cli::try_parse_from(&expanded).unwrap();
    }

    #[test]
    fn an_unknown_key_or_a_table_is_named() {
        let path = file("bad.toml", "from = \"a@b.test\"\nmax-jbos = 2\n");
        let error = expand::<Cli>(args(&[
            "mxprobe",
            "serve",
            "--config",
            path.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(
            error.contains("\"max-jbos\"") && error.contains("serve --help"),
            "{error}"
        );
        std::fs::write(&path, "[engine]\nfrom = \"a@b.test\"\n").unwrap();
        assert!(
            expand::<Cli>(args(&[
                "mxprobe",
                "serve",
                "--config",
                path.to_str().unwrap()
            ]))
            .is_err()
        );
        std::fs::write(&path, "not toml = = =").unwrap();
        let error = expand::<Cli>(args(&[
            "mxprobe",
            "serve",
            "--config",
            path.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(error.contains("not TOML"), "{error}");
        std::fs::remove_file(&path).unwrap();
        // Commands without --config are left alone.
        let plain = args(&["mxprobe", "mx", "example.com"]);
        assert_eq!(expand::<Cli>(plain.clone()).unwrap(), plain);
    }
}
