//! TLS to PostgreSQL, as libpq's `sslmode` reads: against a PostgreSQL this test starts for
//! itself (`initdb` into a scratch directory, its own port, SSL on with a CA and a server
//! certificate generated here) and a role that may only connect over TLS, so the shared server
//! is left alone.
use crate::support::*;
use rollbot::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Generated for one test: a CA, a server certificate it signed for `localhost` only, and a CA
/// that signed nothing of the server's.
struct Certificates {
    ca: PathBuf,
    stranger_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn certificates(dir: &Path) -> Certificates {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rollbot test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let stranger_key = KeyPair::generate().unwrap();
    let mut stranger_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    stranger_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let stranger = stranger_params.self_signed(&stranger_key).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Certificates {
        ca: write("ca.pem", ca.pem()),
        stranger_ca: write("stranger.pem", stranger.pem()),
        server_cert: write("server.crt", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
    }
}

/// A PostgreSQL of the test's own, stopped when dropped.
struct TlsPostgres {
    port: u16,
    certificates: Certificates,
    server: Child,
    _dir: tempfile::TempDir,
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Debian's PostgreSQL server programs (`initdb`, `postgres`), newest version.
fn server_program(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql package (.ci/run installs it) provides initdb")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

/// Runs `program` as the `postgres` user when the tests run as root (PostgreSQL refuses root).
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

async fn tls_postgres() -> TlsPostgres {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::set_permissions(
        &certificates.server_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let initdb = as_server_user(&server_program("initdb"))
        .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    // The role `tlsonly` may only come in over TLS; everyone else may come in either way.
    std::fs::write(
        data.join("pg_hba.conf"),
        "hostnossl all tlsonly 127.0.0.1/32 reject\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\nlocal all all trust\n",
    )
    .unwrap();
    let server = as_server_user(&server_program("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", &format!("port={port}")])
        .args(["-c", &format!("unix_socket_directories={}", dir.path().display())])
        .args(["-c", "ssl=on", "-c", "fsync=off"])
        .args(["-c", &format!("ssl_cert_file={}", certificates.server_cert.display())])
        .args(["-c", &format!("ssl_key_file={}", certificates.server_key.display())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let admin = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let (client, connection) = crate::support::serve::wait_for("the test's own PostgreSQL", async || {
        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.ok()
    })
    .await;
    tokio::spawn(connection);
    for statement in [
        "CREATE ROLE tlsonly LOGIN CREATEDB",
        "CREATE DATABASE tls_checks OWNER tlsonly",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    TlsPostgres {
        port,
        certificates,
        server,
        _dir: dir,
    }
}

impl TlsPostgres {
    /// The role that may only use TLS, at `host`, with `tls` as the URL's query.
    fn url(&self, host: &str, database: &str, tls: &str) -> String {
        format!("postgres://tlsonly@{host}:{}/{database}?{tls}", self.port)
    }

    fn ca(&self) -> String {
        self.certificates.ca.display().to_string()
    }
}

async fn store_error(url: &str) -> String {
    match Store::connect(url).await {
        Ok(_) => panic!("connected with {url}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn the_store_speaks_tls_as_libpq_does_and_verify_full_refuses_a_wrong_host_name() {
    let pg = tls_postgres().await;
    let ca = pg.ca();

    // verify-full: the chain and the name; the store creates its database and migrates over TLS.
    let store = Store::connect(&pg.url(
        "localhost",
        "rollbot_tls",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-full against the server's own CA and name");
    store.migrate().await.unwrap();
    let figures = store.figures(chrono::Utc::now()).await.unwrap();
    assert_eq!(figures.outbox_undeliverable, 0, "the migrated store answers");

    let refused = store_error(&pg.url(
        "127.0.0.1",
        "rollbot_tls",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    assert!(
        refused.contains("not valid for name") || refused.contains("NotValidForName"),
        "the certificate names localhost, not 127.0.0.1: {refused}"
    );
    // verify-ca checks the chain only: the same address is fine.
    Store::connect(&pg.url(
        "127.0.0.1",
        "rollbot_tls",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-ca does not check the name");
    let stranger = pg.certificates.stranger_ca.display().to_string();
    let refused = store_error(&pg.url(
        "localhost",
        "rollbot_tls",
        &format!("sslmode=verify-ca&sslrootcert={stranger}"),
    ))
    .await;
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("unknown issuer"),
        "{refused}"
    );
    // require encrypts without checking; prefer (libpq's default) takes TLS when offered.
    Store::connect(&pg.url("127.0.0.1", "rollbot_tls", "sslmode=require"))
        .await
        .expect("require");
    Store::connect(&pg.url("127.0.0.1", "rollbot_tls", ""))
        .await
        .expect("prefer, the default");
    // The role may not come in without TLS: disable is refused by the server's rules.
    let refused = store_error(&pg.url("127.0.0.1", "rollbot_tls", "sslmode=disable")).await;
    assert!(
        refused.contains("pg_hba.conf rejects connection") || refused.contains("rejects"),
        "{refused}"
    );
    let refused = store_error(&pg.url("localhost", "rollbot_tls", "sslmode=verify-full")).await;
    assert!(refused.contains("needs sslrootcert"), "{refused}");
}

fn tls_config(marker: &str) -> String {
    test_config(marker).replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "over-tls"]"#,
    ) + r#"
[databases.secure]
url_env = "SECURE_DATABASE_URL"

[runbooks.over-tls]
description = "A check over TLS"

[[runbooks.over-tls.steps]]
name = "This connection is encrypted"
sql = { database = "secure", assert = { query = "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", expect = "= true" } }
"#
}

/// Runs the `over-tls` runbook (critical: at once) against the database at `url`.
async fn run_the_tls_check(url: &str) -> (Rollbot, Posted, Vec<String>) {
    let bot = Rollbot::builder()
        .config(tls_config)
        .secrets(&[("SECURE_DATABASE_URL", url)])
        .start()
        .await;
    bot.slash(ALICE, "checkout-api runbook over-tls severity critical")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    let thread = bot.thread(&card);
    (bot, card, thread)
}

#[tokio::test]
async fn a_sql_step_connects_over_tls_and_names_why_it_could_not() {
    let pg = tls_postgres().await;
    let url = pg.url(
        "localhost",
        "tls_checks",
        &format!("sslmode=verify-full&sslrootcert={}", pg.ca()),
    );
    let (bot, card, thread) = run_the_tls_check(&url).await;
    assert!(
        thread.iter().any(
            |m| m.starts_with("✅ Step 1/1 *This connection is encrypted* succeeded")
                && m.contains("true meets = true")
        ),
        "{thread:#?}"
    );
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));

    // The wrong name: the step cannot start, and says why without the connection string.
    let wrong = pg.url(
        "127.0.0.1",
        "tls_checks",
        &format!("sslmode=verify-full&sslrootcert={}", pg.ca()),
    );
    let (bot, card, thread) = run_the_tls_check(&wrong).await;
    let failed = thread
        .iter()
        .find(|m| m.starts_with("❌ Step 1/1 *This connection is encrypted* could not start"))
        .unwrap_or_else(|| panic!("{thread:#?}"));
    assert!(failed.contains("cannot connect to database `secure`"), "{failed}");
    assert!(
        !failed.contains("tlsonly@"),
        "the connection string stays out of the thread: {failed}"
    );
    bot.card_now(&card);
}
