//! Secrets never leave idgraph, even when a peer echoes them back.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::util::{json_output, Org, Workspace};

const PASSWORD: &str = "echoed-Pa55word-c0ffee";

/// A server that speaks just enough of the PostgreSQL protocol to refuse every login with
/// an error message that quotes `secret`, as a misconfigured proxy or a chatty
/// authentication plugin might. Serves `logins` connections, then stops.
fn echoing_postgres(secret: &'static str, logins: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(logins) {
            let Ok(mut stream) = stream else { continue };
            // The startup message: a length, then that many bytes less four.
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).is_err() {
                continue;
            }
            let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
            if stream.read_exact(&mut startup).is_err() {
                continue;
            }
            let mut fields = Vec::new();
            for (code, value) in [
                (b'S', "FATAL".to_owned()),
                (b'V', "FATAL".to_owned()),
                (b'C', "28P01".to_owned()),
                (
                    b'M',
                    format!("password authentication failed: \"{secret}\" is not the password"),
                ),
            ] {
                fields.push(code);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            let mut message = vec![b'E'];
            message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
            message.extend_from_slice(&fields);
            let _ = stream.write_all(&message);
        }
    });
    port
}

/// A `postgres` target at the echoing server on `port`.
fn echo_target(port: u16) -> String {
    format!(
        "[[targets]]\nname = \"echo\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         database = \"postgres\"\nuser_env = \"ECHO_USER\"\npassword_env = \"ECHO_PASSWORD\"\n\
         sslmode = \"disable\"\n"
    )
}

fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password:\n{text}"
    );
}

// Regression: a database that echoed the password in its error message got it into
// stdout, the logs, the store and evidence.json.
#[test]
fn a_database_that_echoes_the_password_never_gets_it_shown_or_stored() {
    let port = echoing_postgres(PASSWORD, 8);
    let ws = Workspace::with_targets(&Org::ann_and_bob(), &echo_target(port));
    let env = [
        ("ECHO_USER", "idgraph_reader"),
        ("ECHO_PASSWORD", PASSWORD),
        ("RUST_LOG", "debug"),
    ];
    let output = ws.idgraph_env(&["reconcile", "--format", "json"], &env);
    assert_hidden("stderr", &String::from_utf8_lossy(&output.stderr));
    let (code, report) = json_output(output);
    assert_eq!(code, 2, "{report}");
    let error = report["sources"][2]["error"]
        .as_str()
        .expect("the target failed");
    // The peer's message is kept, without the secret.
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(error.contains("[redacted]"), "{error}");
    assert_hidden("the report", &report.to_string());

    let output = ws.idgraph_env(&["check"], &env);
    assert_hidden("check", &String::from_utf8_lossy(&output.stdout));
    assert_hidden("check's stderr", &String::from_utf8_lossy(&output.stderr));

    let history = ws.idgraph(&["history", "--format", "json"]);
    assert_eq!(history.status.code(), Some(0));
    assert_hidden("history", &String::from_utf8_lossy(&history.stdout));
    let export = ws.export_everything("bundle");
    assert_eq!(export.status.code(), Some(0));
    for file in std::fs::read_dir(ws.path("bundle")).expect("the bundle") {
        let path = file.expect("a file").path();
        assert_hidden(
            &path.display().to_string(),
            &String::from_utf8_lossy(&std::fs::read(&path).expect("readable")),
        );
    }
    let store = std::fs::read(ws.path("store/idgraph.db")).expect("the store");
    assert_hidden("the store", &String::from_utf8_lossy(&store));
}

// Regression: findings, history, verify and export failed unless every token and password
// variable of the sources was set, though they read only the store.
#[test]
fn reading_the_store_needs_no_source_secret() {
    let port = echoing_postgres(PASSWORD, 1);
    let ws = Workspace::with_targets(&Org::ann_and_bob(), &echo_target(port));
    let env = [("ECHO_USER", "u"), ("ECHO_PASSWORD", PASSWORD)];
    assert_eq!(ws.idgraph_env(&["reconcile"], &env).status.code(), Some(2));
    ws.assert_succeeds(&[&["findings"], &["history"], &["verify"]]);
    // A command that reaches the sources still needs them.
    let output = ws.idgraph(&["reconcile"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ECHO_PASSWORD"), "{stderr}");
}
