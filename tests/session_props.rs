//! Property test of the probe session: for random server behaviour (replies of every kind,
//! arbitrary bytes in arbitrary chunks, silences, closes), the session ends within its deadline,
//! settles every recipient once, never writes DATA or BDAT or a stray CR or LF, and keeps its
//! output small. The checks are the `session` fuzz target's, shared through fuzz/src/lib.rs.

#[path = "../fuzz/src/lib.rs"]
#[allow(
    dead_code,
    reason = "shared with the fuzz crate; this test uses the session check"
)]
mod checks;

use proptest::prelude::*;

/// One instruction of the `session` check's script: a canned reply (most often, so runs get
/// deep into a conversation), a silence, a close, or a chunk of arbitrary bytes.
fn instruction() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (220u8..=231).prop_map(|op| vec![op]),
        1 => (160u8..=219).prop_map(|op| vec![op]),
        1 => Just(vec![232u8]),
        2 => proptest::collection::vec(any::<u8>(), 1..=16).prop_map(|bytes| {
            let len = u8::try_from(bytes.len() - 1).expect("at most 16");
            [vec![len], bytes].concat()
        }),
    ]
}

fn behaviour() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), proptest::collection::vec(instruction(), 0..40))
        .prop_map(|(setup, script)| [vec![setup], script.concat()].concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn sessions_always_end_cleanly(data in behaviour()) {
        checks::session(&data);
    }

    #[test]
    fn sessions_survive_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        checks::session(&data);
    }
}
