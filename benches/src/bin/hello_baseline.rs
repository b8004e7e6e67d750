//! hello-baseline: the raw axum server the gateway is measured against.
//!
//! `GET /` answers `hello`, with no middleware, no state and no IO, on the
//! same tokio runtime the `bankdirect` binary builds (multi-thread, default
//! worker count, all drivers). Whatever the gateway does per request
//! (request ids, tracing, metrics, token verification, entitlement, a SQLite
//! read, JSON) shows as the distance from this server's numbers, measured in
//! the same run by `benches/run.sh`; see BENCHMARKS.md.
//!
//! With `--body-file FILE`, `GET /body` also answers the file's bytes as
//! `application/json`, held in memory and served without copying: the cost
//! of moving a response of that size through hyper, the kernel and the load
//! generator, and nothing else. `benches/run.sh` gives it a copy of the
//! gateway's transaction page, so the page's row can be read against the
//! best any server could do with those bytes.
//!
//! It listens on 127.0.0.1 only and prints the bound address as the first
//! line on stdout, so a script can start it on port 0 and read where it is.

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use axum::{
    body::Bytes,
    http::{header, HeaderValue},
    routing::get,
    Router,
};

/// The allocator the `bankdirect` binary uses, so that the comparison
/// measures what the gateway does, not which malloc it links.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const HELP: &str = "\
hello-baseline: a raw axum hello-world server, the baseline for BENCHMARKS.md

Usage: hello-baseline [--port N] [--body-file FILE]

Options:
  --port N            port on 127.0.0.1 to listen on; 0 picks any free port [default: 0]
  --body-file FILE    also answer GET /body with FILE's bytes (read once at start,
                      served from memory as application/json)
  -h, --help          print this help

The first line on stdout is the bound address (e.g. 127.0.0.1:41234).
GET / answers \"hello\". Stop it with Ctrl-C or SIGTERM.

Examples:
  hello-baseline --port 0 &
  curl http://127.0.0.1:PORT/      # -> hello
  hello-baseline --body-file page.json &
  curl http://127.0.0.1:PORT/body  # -> the bytes of page.json
";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Args {
    Help,
    Serve {
        port: u16,
        body_file: Option<PathBuf>,
    },
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut port = 0_u16;
    let mut body_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value ({what})"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Args::Help),
            "--port" => {
                let v = value("a port number, or 0")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port: expected a number from 0 to 65535, got {v:?}"))?;
            }
            "--body-file" => body_file = Some(PathBuf::from(value("a file's path")?)),
            other => return Err(format!("unexpected argument {other:?}; see --help")),
        }
    }
    Ok(Args::Serve { port, body_file })
}

async fn hello() -> &'static str {
    "hello"
}

async fn serve(port: u16, body: Option<Bytes>) -> std::io::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addr}")?;
        out.flush()?;
    }
    let mut app = Router::new().route("/", get(hello));
    if let Some(body) = body {
        // `Bytes` clones share the one buffer: nothing is copied per request.
        app = app.route(
            "/body",
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        body,
                    )
                }
            }),
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn main() -> ExitCode {
    let (port, body_file) = match parse_args(std::env::args().skip(1)) {
        Ok(Args::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Args::Serve { port, body_file }) => (port, body_file),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match body_file
        .map(|path| std::fs::read(&path).map_err(|e| (path, e)))
        .transpose()
    {
        Ok(body) => body.map(Bytes::from),
        Err((path, e)) => {
            eprintln!("error: cannot read --body-file {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    // The same runtime as the `bankdirect` binary: multi-thread, default
    // worker count (one per core), every driver enabled.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(port, body)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot serve on 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn port_defaults_to_any() {
        assert_eq!(
            parse(&[]),
            Ok(Args::Serve {
                port: 0,
                body_file: None
            })
        );
    }

    #[test]
    fn port_in_both_spellings() {
        let serve = |port| Args::Serve {
            port,
            body_file: None,
        };
        assert_eq!(parse(&["--port", "8081"]), Ok(serve(8081)));
        assert_eq!(parse(&["--port=0"]), Ok(serve(0)));
    }

    #[test]
    fn body_file_in_both_spellings() {
        let want = Ok(Args::Serve {
            port: 7,
            body_file: Some(PathBuf::from("/tmp/page.json")),
        });
        assert_eq!(
            parse(&["--body-file", "/tmp/page.json", "--port", "7"]),
            want
        );
        assert_eq!(parse(&["--port=7", "--body-file=/tmp/page.json"]), want);
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["--port", "1", "--help"]), Ok(Args::Help));
        assert_eq!(parse(&["-h"]), Ok(Args::Help));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "65536"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
        assert!(parse(&["--body-file"]).is_err());
        assert!(parse(&["--verbose=1"]).is_err());
    }
}
