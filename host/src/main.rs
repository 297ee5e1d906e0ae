//! The `hookbox` binary; everything lives in the library (see `cli`).

fn main() -> std::process::ExitCode {
    hookbox::cli::main()
}
