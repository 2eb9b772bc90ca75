//! The compile errors a user can meet, one case per message: `tests/ui/<diagnostic>/<case>.rs`
//! with the expected output beside it. Regenerate with `TRYBUILD=overwrite cargo test -p
//! graven-macros --test ui`, then read every `.stderr`: each message must name the offending
//! token and say the fix.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
