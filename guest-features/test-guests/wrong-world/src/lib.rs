//! Test guest: a valid component that exports the wrong world
//! (`not-a-feature`, one `hello` function; see `wit/world.wit` in this crate).
//!
//! Deliberately does not use the SDK, whose bindings are the `feature`
//! world. For the host's tests that a plugin of another world is refused on
//! load with an error naming the mismatch.

wit_bindgen::generate!({
    path: "wit",
    world: "not-a-feature",
});

struct Hello;

impl Guest for Hello {
    fn hello() -> String {
        "hello from a component that is not a feature".to_owned()
    }
}

export!(Hello);
