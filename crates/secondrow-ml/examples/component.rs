//! Development stand-in for `secondrow component NAME --arg value ...` until the `secondrow` binary
//! wires [`secondrow_ml::run_component`]: `cargo run -p secondrow-ml --example component -- NAME ...`.

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "--help" || argv[0] == "-h" {
        print!("{}", secondrow_ml::usage());
        return;
    }
    if let Err(e) = secondrow_ml::run_component(&argv) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
