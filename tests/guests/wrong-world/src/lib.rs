//! A valid component that implements some other world (it exports `greet`,
//! not `hookbox:okta-import/resolver`): what a plugin author gets when they
//! build against the wrong WIT.

// wit-bindgen's generated glue is unsafe by nature; nothing hand-written here is.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package test:wrong@1.0.0;
        world greeter {
            export greet: func() -> string;
        }
    ",
});

struct Greeter;

impl Guest for Greeter {
    fn greet() -> String {
        "hello".to_owned()
    }
}

export!(Greeter);
