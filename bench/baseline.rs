//! The benchmark baseline: an ntex server that answers every request with one precomputed
//! body (a real feed page captured from douyin-lite), so that each scenario's throughput can
//! be quoted as a ratio to "the same machine sending a response of the same size".
//!
//! `bench-baseline <body-file> <addr> [workers]`

use ntex::web::{self, HttpResponse};

#[ntex::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-baseline <body-file> <addr> [workers]");
        std::process::exit(2);
    };
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let body = ntex::util::Bytes::from(std::fs::read(&file)?);
    eprintln!(
        "baseline: {} bytes on {addr}, {workers} workers",
        body.len()
    );
    web::HttpServer::new(async move || {
        let body = body.clone();
        web::App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
