//! The benchmark baseline: an ntex server that answers every request with a precomputed body
//! (responses captured from douyin-lite), so that each scenario's throughput can be quoted as
//! a ratio to "the same machine sending a response of the same size".
//!
//! `bench-baseline <body-file | dir> <addr> [workers]`
//!
//! Given a directory, `GET /<name>` answers with `<dir>/<name>.json` (one captured response
//! per scenario) and any other path with `<dir>/feed_page.json`. Given a file, every path
//! answers with it.
//!
//! `bench-baseline --probe` instead measures the machine as it is at that moment (`probe.rs`),
//! so that runs of the runner made at different times can be compared.

mod probe;

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use ntex::util::Bytes;
use ntex::web::{self, HttpRequest, HttpResponse};

fn load(path: &Path) -> std::io::Result<(HashMap<String, Bytes>, Bytes)> {
    if !path.is_dir() {
        return Ok((HashMap::new(), Bytes::from(std::fs::read(path)?)));
    }
    let mut bodies = HashMap::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "json") {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                bodies.insert(format!("/{stem}"), Bytes::from(std::fs::read(&p)?));
            }
        }
    }
    let fallback = bodies.get("/feed_page").cloned().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no feed_page.json in the directory",
        )
    })?;
    Ok((bodies, fallback))
}

#[ntex::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--probe") {
        println!("{}", probe::run().json());
        return Ok(());
    }
    let (Some(path), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-baseline <body-file | dir> <addr> [workers] | --probe");
        std::process::exit(2);
    };
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let (bodies, fallback) = load(Path::new(&path))?;
    for (name, body) in &bodies {
        eprintln!("baseline: {name}: {} bytes", body.len());
    }
    eprintln!(
        "baseline: default {} bytes on {addr}, {workers} workers",
        fallback.len()
    );
    web::HttpServer::new(async move || {
        let bodies = Rc::new(bodies.clone());
        let fallback = fallback.clone();
        web::App::new().default_service(web::to(move |req: HttpRequest| {
            let body = bodies.get(req.path()).unwrap_or(&fallback).clone();
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
