use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = guestbridge::cli::Cli::parse();
    if let Err(err) = guestbridge::cli::run(cli).await {
        // One line: the error and its causes.
        let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        eprintln!("guestbridge: {}", chain.join(": "));
        std::process::exit(1);
    }
}
