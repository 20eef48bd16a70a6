#!/usr/bin/env python3
"""Regenerates the vendored address lists of mxprobe from their public sources.

    python3 src/address/lists/refresh.py            # from the repository root

Writes, next to this script:

- disposable_domains.rs  from the PyPI package `disposable-email-domains` (the list of
  github.com/disposable-email-domains/disposable-email-domains, CC0-1.0; the package is MIT);
- free_domains.rs        from the npm package `free-email-domains` (github.com/Kikobeats/
  free-email-domains, MIT: HubSpot's free-provider list plus others), minus every domain of the
  disposable list, so that the two flags never overlap, and minus TYPO_DOMAINS below;
- role_accounts.rs       from the npm package `role-based-email-addresses` (github.com/mixmaxhq/
  role-based-email-addresses, MIT) plus the mailbox names of RFC 2142 and a few more, minus the
  entries in EXCLUDED_ROLES below (years, places, brands, and words that are more often a
  person's or a club's address than a role).

Needs `pip` and `npm` (both only to download the packages) and network access to PyPI and the
npm registry. Review the diff before committing: the tests in src/address/flags.rs check that
every list is sorted, unique, lower-case and well-formed.
"""

import datetime
import io
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent

# RFC 2142 §3-5 (mailbox names for common services, roles and functions), and the addresses mail
# systems and list managers answer as.
RFC_2142_AND_MAIL_SYSTEM_ROLES = [
    "abuse", "bounce", "bounces", "dmarc", "ftp", "hostmaster", "info", "listmaster",
    "mailer-daemon", "marketing", "news", "noc", "postmaster", "root", "sales", "security",
    "support", "usenet", "uucp", "webmaster", "www",
]

EXCLUDED_ROLES = {
    # numbers and keyboard mashing: test data, not roles
    "123", "aaa", "abc", "asd", "asdasd", "asdf",
    # places
    "berlin", "boston", "caltrain", "chicago", "china", "denver", "europe", "france", "india",
    "la", "latam", "montreal", "newyork", "northamerica", "ny", "nyc", "nyoffice", "paris",
    "sanfrancisco", "seattle", "sf", "sf-office", "sfo", "sfoffice", "sfteam", "singapore",
    "stockholm", "sydney", "uk", "us", "usa", "usteam",
    # brands and products
    "alexa", "android", "apple", "digsitesvalue", "facebook", "gardner", "ifttt", "instagram",
    "ios", "iphone", "itunes", "jira", "lifesum", "namecheap", "paypal", "plex", "plex.tv",
    "salesforce", "shopify", "stripe", "twitter", "wordpress",
    # words more often a person's, a club's or a nickname than a function
    "alpha", "alphas", "angels", "captain", "captains", "chef", "church", "crew", "family",
    "food", "football", "friends", "fun", "geeks", "hackers", "home", "homes", "hotel", "house",
    "ladies", "lunch", "mayor", "music", "pastor", "per", "prime", "principa", "professor",
    "random", "rockstars", "seniors", "smile", "sport", "squad", "stay", "stories", "time",
    "tribe", "women",
    # two-letter initials that are as often a person's
    "ca", "cm", "gm", "lt", "md", "mt", "pd", "se", "ta",
}

# Misspellings of popular providers that the free-provider source lists as providers (HubSpot
# blocks them in forms, which is right for HubSpot). For a verifier they are typos first: kept
# off the free list, so the typo suggestion offers the provider they misspell. Found by listing
# the free domains within suggestion distance of a popular provider (src/address/suggest.rs)
# and keeping the ones no provider runs.
TYPO_DOMAINS = {
    "hitmail.com", "hotmail.co", "outiook.com", "sbcglbal.net", "uymail.com", "vahoo.com",
    "yaho.com", "yahoo.co",
}

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def pypi_disposable(tmp):
    run(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
        "disposable-email-domains", cwd=tmp)
    wheel = next(pathlib.Path(tmp).glob("disposable_email_domains-*.whl"))
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        source = z.read("disposable_email_domains/__init__.py").decode()
    return version, set(re.findall(r"'([^']+)'", source))


def npm_package(tmp, name):
    out = subprocess.run(["npm", "pack", "--silent", name], cwd=tmp, check=True,
                         capture_output=True, text=True).stdout.split()[-1]
    version = re.search(r"-(\d+\.\d+\.\d+)\.tgz$", out).group(1)
    return version, tarfile.open(pathlib.Path(tmp) / out)


def is_domain(name):
    labels = name.split(".")
    return (len(labels) >= 2 and len(name) <= 253 and all(LABEL.match(l) for l in labels)
            and not labels[-1].isdigit())


def write_list(file, doc, static, entries, header):
    entries = sorted(entries, key=lambda e: e.encode())
    lines = [f"//! {line}".rstrip() for line in header]
    lines += ["", f"/// {doc}", f"pub(in crate::address) static {static}: [&str; {len(entries)}] = ["]
    lines += [f'    "{e}",' for e in entries]
    lines += ["];", ""]
    (HERE / file).write_text("\n".join(lines))
    print(f"{file}: {len(entries)} entries")


def main():
    today = datetime.date.today().isoformat()
    generated = f"Generated by `src/address/lists/refresh.py` on {today}; do not edit by hand."
    with tempfile.TemporaryDirectory() as tmp:
        dis_version, disposable = pypi_disposable(tmp)
        free_version, free_tar = npm_package(tmp, "free-email-domains")
        free = set(json.load(free_tar.extractfile("package/domains.json")))
        role_version, role_tar = npm_package(tmp, "role-based-email-addresses")
        role_source = role_tar.extractfile("package/src/index.js").read().decode()

    disposable = {d.strip().lower() for d in disposable if is_domain(d.strip().lower())}
    write_list("disposable_domains.rs", "Disposable (throwaway) mail domains, sorted by bytes.",
               "DISPOSABLE_DOMAINS", disposable, [
                   "Disposable mail domains.", "",
                   generated,
                   f"Source: PyPI package `disposable-email-domains` {dis_version}, the list of",
                   "<https://github.com/disposable-email-domains/disposable-email-domains>.",
                   "License: the list is CC0-1.0 (public domain); the package is MIT.",
               ])

    free = {d.strip().lower() for d in free if is_domain(d.strip().lower())}
    free = free - disposable - TYPO_DOMAINS
    write_list("free_domains.rs", "Free mailbox providers, sorted by bytes.",
               "FREE_DOMAINS", free, [
                   "Free mailbox providers.", "",
                   generated,
                   f"Source: npm package `free-email-domains` {free_version}",
                   "(<https://github.com/Kikobeats/free-email-domains>, HubSpot's list of free",
                   "providers and others), minus every domain of the disposable list and the",
                   "misspellings of popular providers listed in TYPO_DOMAINS in the script.",
                   "License: MIT, Copyright (c) 2017 Kiko Beats.",
               ])

    roles = set(re.findall(r"'([^']+)'", role_source)) | set(RFC_2142_AND_MAIL_SYSTEM_ROLES)
    roles = {r.lower() for r in roles if LOCAL.match(r.lower())} - EXCLUDED_ROLES
    write_list("role_accounts.rs", "Role-account local parts, lower-case, sorted by bytes.",
               "ROLE_ACCOUNTS", roles, [
                   "Role accounts: local parts that name a function, not a person.", "",
                   generated,
                   f"Source: npm package `role-based-email-addresses` {role_version}",
                   "(<https://github.com/mixmaxhq/role-based-email-addresses>, MIT, Copyright (c)",
                   "2015 Mixmax, Inc), plus the mailbox names of RFC 2142 and of mail systems",
                   "(bounce, dmarc, listmaster), minus years, places, brands and words that are",
                   "more often a person's or a club's address (see EXCLUDED_ROLES in the script).",
               ])


if __name__ == "__main__":
    main()
