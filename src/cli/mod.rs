//! The command line (SPEC §2). `run` and `check` work on the config file; the admin commands (`send`,
//! `deliveries`, `delivery`, `event`, `retry`, `resend`, `erase`, `subscriptions`, `pause`, `resume`) talk to the running daemon over its
//! unix socket. Ids and names are percent-encoded into request paths, so any id is safe to pass.

mod client;
mod table;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Args, Parser, Subcommand};
use rand::TryRngCore;
use serde_json::{json, Value};

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use client::AdminClient;

#[derive(Parser)]
#[command(name = "hookrelay", version = crate::VERSION_AND_COMMIT, about = "A durable webhook relay for clinic software.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run(RunArgs),
    /// Validate the config file; print every problem as FILE:LINE:COL: message.
    Check(CheckArgs),
    /// Submit one event to the running daemon; prints its id.
    Send(SendArgs),
    /// List deliveries.
    Deliveries(ListArgs),
    /// Show one delivery with every attempt.
    Delivery(ShowArgs),
    /// Show one event (its data as stored) and all its deliveries.
    Event(ShowArgs),
    /// Requeue deliveries with a fresh retry schedule.
    Retry(RetryArgs),
    /// Send delivered or failed deliveries again: a new delivery of the same event (same webhook-id).
    Resend(IdsArgs),
    /// Erase events' data now (right to erasure); pending deliveries of them are cancelled.
    Erase(IdsArgs),
    /// Print a new random secret: a signing secret (whsec_<base64 of 32 bytes>), a store key or an ed25519
    /// key pair.
    Secret(SecretArgs),
    /// Each subscription: state (active, paused, held), counts by status, oldest pending age, last error.
    Subscriptions(JsonArgs),
    /// Pause a subscription: its queue waits and no attempt is made until `hookrelay resume`.
    Pause(NameArgs),
    /// Resume a subscription paused by hand, by a 410 Gone, or by its failures.
    Resume(NameArgs),
    /// A local HTTPS test receiver: prints each request it gets and whether its signature verifies.
    Receive(ReceiveArgs),
}

#[derive(Args)]
pub struct ReceiveArgs {
    /// The address to listen on (port 0: any free port; the one taken is printed).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Where its throwaway CA (ca.pem, for a subscription's ca_file) and certificate are kept; made on
    /// first use.
    #[arg(long, default_value = "hookrelay-receiver")]
    dir: PathBuf,
    /// A key to verify signatures with: a subscription's secret (whsec_..., or the hmac-sha256 secret as
    /// written) or an ed25519 public key (whpk_..., for v1a). May be given more than once.
    #[arg(long = "secret", value_name = "S")]
    secrets: Vec<String>,
    /// The status every request is answered with.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    status: u16,
}

#[derive(Args)]
pub struct JsonArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the admin API's JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct NameArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The subscription's name.
    name: String,
}

#[derive(Args)]
pub struct SecretArgs {
    /// hmac: a signing secret for a subscription's `secret`; store-key: an `encryption_key` (base64 of 32
    /// bytes); ed25519: a `signing_key` (whsk_...) and, on the second line, its public key for receivers
    /// (whpk_...).
    #[arg(long, value_enum, default_value_t = SecretKind::Hmac)]
    kind: SecretKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SecretKind {
    Hmac,
    StoreKey,
    Ed25519,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Do not read secret sources ({ env = ... }, { file = ... }, { credential = ... }): check syntax,
    /// types, globs, urls and paths only, e.g. from a shell without the service's credentials.
    #[arg(long)]
    pub no_secrets: bool,
}

#[derive(Args)]
pub struct ConfigArg {
    /// The config file.
    #[arg(short = 'c', long = "config", env = "HOOKRELAY_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start even if the store holds fewer deliveries than it had made durable (a truncated, damaged or
    /// replaced database); how many are missing is logged, and the check starts over from what is there.
    #[arg(long)]
    pub accept_damaged_store: bool,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The event type, e.g. appointment.created.
    #[arg(value_name = "TYPE")]
    event_type: String,
    /// The event's data: JSON, @path to read it from a file, or - for stdin. Defaults to {}.
    data: Option<String>,
    /// An idempotency key; the relay assigns evt_<ULID> when absent.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// pending, held, delivered, failed, cancelled or all.
    #[arg(long, default_value = "all",
          value_parser = ["pending", "held", "delivered", "failed", "cancelled", "all"])]
    status: String,
    #[arg(long)]
    subscription: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=crate::admin::MAX_LIMIT as i64))]
    limit: u16,
    /// The next page: the cursor (a delivery id) the previous page printed.
    #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
    after: Option<String>,
    /// Print the admin API's JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct IdsArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Ids (deliveries for resend, events for erase).
    #[arg(required = true)]
    ids: Vec<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// A delivery id (dlv_...), or an event id for `event`.
    id: String,
    /// Print the admin API's JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "failed"])))]
pub struct RetryArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Delivery ids (dlv_...).
    ids: Vec<String>,
    /// Every failed delivery (narrowed by --subscription and --since).
    #[arg(long, conflicts_with = "ids")]
    failed: bool,
    #[arg(long, requires = "failed")]
    subscription: Option<String>,
    /// Only deliveries that failed within this long, e.g. 2h.
    #[arg(long, requires = "failed")]
    #[arg(value_parser = parse_since)]
    since: Option<String>,
}

/// Runs an admin or helper command (everything but `run`); prints its output and returns the exit code.
pub fn execute(command: Command) -> ExitCode {
    let outcome = match command {
        Command::Run(_) => unreachable!("`run` is handled by main"),
        Command::Check(args) => return check(&args),
        Command::Secret(args) => new_secret(args.kind),
        Command::Send(args) => send(args),
        Command::Deliveries(args) => list(args),
        Command::Delivery(args) => show(args),
        Command::Event(args) => show_event(args),
        Command::Retry(args) => retry(args),
        Command::Resend(args) => each(
            args,
            "resend",
            |id| format!("/v1/deliveries/{}/resend", segment(id)),
            |answer| format!("resent as {}", text(&answer["delivery"])),
        ),
        Command::Subscriptions(args) => subscriptions(args),
        Command::Receive(args) => match crate::receive::keys(&args.secrets) {
            // A usage error, judged before anything is made; not through clap, which would repeat the
            // value (a signing secret) in its message.
            Err(message) => {
                eprintln!("hookrelay: {message}");
                return ExitCode::from(2);
            }
            Ok(keys) => receive(args, keys),
        },
        Command::Pause(args) => pause_or_resume(args, "pause"),
        Command::Resume(args) => pause_or_resume(args, "resume"),
        Command::Erase(args) => each(
            args,
            "erase",
            |id| format!("/v1/events/{}/erase", segment(id)),
            |answer| format!("erased; {} pending deliveries cancelled", answer["cancelled"]),
        ),
    };
    match outcome {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("hookrelay: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    match Config::check(&args.config.config, !args.no_secrets) {
        Ok(checked) => {
            for warning in &checked.warnings {
                println!("{warning}");
            }
            let count = checked.subscriptions;
            let noun = if count == 1 { "subscription" } else { "subscriptions" };
            let unread = if args.no_secrets { "; secret sources not read" } else { "" };
            println!("{}: ok ({count} {noun}{unread})", checked.file.display());
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            ExitCode::FAILURE
        }
    }
}

fn receive(args: ReceiveArgs, keys: Vec<crate::receive::Key>) -> Result<String, String> {
    let status = hyper::StatusCode::from_u16(args.status).map_err(|e| format!("--status {}: {e}", args.status))?;
    crate::receive::run(crate::receive::Options { listen: args.listen, dir: args.dir, keys, status })?;
    Ok("hookrelay receive: stopped".to_owned())
}

fn client(config: &ConfigArg) -> Result<AdminClient, String> {
    AdminClient::new(Config::unix_socket_of(&config.config)?)
}

fn send(args: SendArgs) -> Result<String, String> {
    let data = match args.data.as_deref() {
        None => "{}".to_owned(),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read DATA from stdin: {e}"))?;
            text
        }
        Some(path) if path.starts_with('@') => {
            std::fs::read_to_string(&path[1..]).map_err(|e| format!("cannot read DATA from {}: {e}", &path[1..]))?
        }
        Some(text) => text.to_owned(),
    };
    let answer =
        client(&args.config)?.post_bytes("/v1/events", event_body(&args.event_type, args.id.as_deref(), data)?)?;
    Ok(answer["id"].as_str().unwrap_or_default().to_owned())
}

/// `--after` is judged by the command itself too: a cursor is a delivery id.
fn parse_cursor(text: &str) -> Result<String, String> {
    crate::store::DeliveryId::parse(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| "not a cursor: `deliveries` prints the next page's as `--after dlv_...`".to_owned())
}

/// `--since` is judged by the command itself (a usage error before any connection).
fn parse_since(text: &str) -> Result<String, String> {
    humantime::parse_duration(text).map(|_| text.to_owned()).map_err(|e| format!("not a duration such as 2h: {e}"))
}

/// The event object `send` posts: DATA byte for byte (key order, number text and escapes as given; the
/// relay compacts it as it does every event), after checking that it is JSON.
fn event_body(event_type: &str, id: Option<&str>, data: String) -> Result<Vec<u8>, String> {
    let data = serde_json::value::RawValue::from_string(data).map_err(|e| format!("DATA is not valid JSON: {e}"))?;
    let mut body = format!("{{\"type\":{}", Value::from(event_type));
    if let Some(id) = id {
        body.push_str(&format!(",\"id\":{}", Value::from(id)));
    }
    body.push_str(&format!(",\"data\":{}}}", data.get()));
    Ok(body.into_bytes())
}

/// A path segment or query value, percent-encoded: everything but letters, digits and `-._~`.
fn segment(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

fn list(args: ListArgs) -> Result<String, String> {
    let mut path = format!("/v1/deliveries?status={}&limit={}", args.status, args.limit);
    if let Some(subscription) = &args.subscription {
        path.push_str(&format!("&subscription={}", segment(subscription)));
    }
    if let Some(after) = &args.after {
        path.push_str(&format!("&after={}", segment(after)));
    }
    let client = client(&args.config)?;
    let document = client.get(&path)?;
    if args.json {
        return Ok(document.to_string());
    }
    let deliveries = document["deliveries"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = deliveries.iter().map(delivery_row).collect();
    let mut output = table::render(&DELIVERY_HEADER, &rows);
    if let Some(next) = document["next"].as_str() {
        output.push_str(&format!("\nnext page: --after {next}"));
    }
    if deliveries.is_empty() {
        if let Some(hint) = unknown_subscription_hint(&client, args.subscription.as_deref()) {
            output.push_str(&format!("\n{hint}"));
        }
    }
    Ok(output)
}

const DELIVERY_HEADER: [&str; 7] =
    ["ID", "STATUS", "SUBSCRIPTION", "EVENT TYPE", "ATTEMPTS", "NEXT ATTEMPT", "LAST RESULT"];

fn delivery_row(d: &Value) -> Vec<String> {
    vec![
        text(&d["id"]),
        text(&d["status"]),
        text(&d["subscription"]),
        text(&d["event_type"]),
        d["attempts"].to_string(),
        text(&d["next_attempt_at"]),
        table::clip(&last_result(d), 48),
    ]
}

/// When a `--subscription` filter found nothing: whether the relay knows that name at all (a typo reads
/// the same as an empty queue otherwise). `None` when it does, or when the list cannot be had.
fn unknown_subscription_hint(client: &AdminClient, name: Option<&str>) -> Option<String> {
    let name = name?;
    let document = client.get("/v1/subscriptions").ok()?;
    let names: Vec<&str> = document["subscriptions"].as_array()?.iter().filter_map(|s| s["name"].as_str()).collect();
    if names.contains(&name) {
        return None;
    }
    let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    Some(format!("no subscription named {}; the relay has: {known}", crate::json::quote(name)))
}

fn subscriptions(args: JsonArgs) -> Result<String, String> {
    let document = client(&args.config)?.get("/v1/subscriptions")?;
    if args.json {
        return Ok(document.to_string());
    }
    let rows: Vec<Vec<String>> = document["subscriptions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(subscription_row)
        .collect();
    let header =
        ["NAME", "STATE", "PENDING", "HELD", "DELIVERED", "FAILED", "CANCELLED", "OLDEST PENDING", "LAST ERROR"];
    Ok(table::render(&header, &rows))
}

fn subscription_row(s: &Value) -> Vec<String> {
    let state = match s["paused_reason"].as_str() {
        Some(reason) => format!("{} ({reason})", text(&s["state"])),
        None => text(&s["state"]),
    };
    let oldest = match s["oldest_pending_age_seconds"].as_f64() {
        Some(age) => humantime::format_duration(std::time::Duration::from_secs(age as u64)).to_string(),
        None => "-".to_owned(),
    };
    let counts = &s["counts"];
    vec![
        text(&s["name"]),
        state,
        counts["pending"].to_string(),
        counts["held"].to_string(),
        counts["delivered"].to_string(),
        counts["failed"].to_string(),
        counts["cancelled"].to_string(),
        oldest,
        table::clip(&text(&s["last_error"]), 48),
    ]
}

fn pause_or_resume(args: NameArgs, action: &str) -> Result<String, String> {
    let path = format!("/v1/subscriptions/{}/{action}", segment(&args.name));
    let answer = client(&args.config)?.post(&path, &json!({}))?;
    Ok(format!("{}: {}", text(&answer["name"]), subscription_row(&answer)[1]))
}

fn show(args: ShowArgs) -> Result<String, String> {
    let document = client(&args.config)?.get(&format!("/v1/deliveries/{}", segment(&args.id)))?;
    if args.json {
        return Ok(document.to_string());
    }
    Ok(delivery_text(&document))
}

/// `delivery ID` for people: its fields, what happened last, a table of its attempts and what each
/// receiver answered.
fn delivery_text(document: &Value) -> String {
    let event = format!("{} ({})", text(&document["event_id"]), text(&document["event_type"]));
    let attempts = document["attempts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let fields = [
        ("id", text(&document["id"])),
        ("event", event),
        ("subscription", text(&document["subscription"])),
        ("status", text(&document["status"])),
        ("attempts", attempts.len().to_string()),
        ("next attempt", text(&document["next_attempt_at"])),
        ("last status", text(&document["last_status_code"])),
        ("last error", text(&document["last_error"])),
        ("created", text(&document["created_at"])),
        ("updated", text(&document["updated_at"])),
    ];
    let mut lines: Vec<String> = fields.iter().map(|(name, value)| format!("{name:<14}{value}")).collect();
    if attempts.is_empty() {
        lines.push(String::new());
        lines.push("no attempt yet".to_owned());
        return lines.join("\n");
    }
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            vec![
                a["n"].to_string(),
                text(&a["started_at"]),
                format!("{} ms", a["duration_ms"]),
                text(&a["status_code"]),
                table::clip(&text(&a["error"]), 60),
            ]
        })
        .collect();
    lines.push(String::new());
    lines.push(table::render(&["N", "STARTED", "DURATION", "STATUS", "ERROR"], &rows));
    for attempt in attempts {
        if let Some(body) = attempt["response_body"].as_str().filter(|b| !b.is_empty()) {
            lines.push(String::new());
            lines.push(format!("attempt {} response body ({} bytes):", attempt["n"], body.len()));
            let shown = crate::terminal::printable(body);
            lines.extend(shown.lines().take(RESPONSE_LINES_SHOWN).map(|line| format!("  {}", table::clip(line, 120))));
            if shown.lines().count() > RESPONSE_LINES_SHOWN {
                lines.push("  …".to_owned());
            }
        }
    }
    lines.join("\n")
}

/// Enough of a receiver's answer to see its error, not a page of HTML.
const RESPONSE_LINES_SHOWN: usize = 8;

fn retry(args: RetryArgs) -> Result<String, String> {
    let client = client(&args.config)?;
    if args.failed {
        let filter = json!({ "status": "failed", "subscription": args.subscription, "since": args.since });
        let answer = client.post("/v1/deliveries/retry", &filter)?;
        let mut output = format!("requeued {}", answer["requeued"]);
        if answer["requeued"] == 0 {
            if let Some(hint) = unknown_subscription_hint(&client, args.subscription.as_deref()) {
                output.push_str(&format!("\n{hint}"));
            }
        }
        return Ok(output);
    }
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for id in &args.ids {
        match client.post(&format!("/v1/deliveries/{}/retry", segment(id)), &json!({})) {
            Ok(_) => lines.push(format!("requeued {id}")),
            Err(message) => refused.push(message),
        }
    }
    if refused.is_empty() {
        Ok(lines.join("\n"))
    } else {
        println!("{}", lines.join("\n"));
        Err(refused.join("\nhookrelay: "))
    }
}

/// `event ID`: its fields, its data exactly as stored (indented, key order and number text kept), and its
/// deliveries. `--json` prints the admin API's text untouched, so the data's bytes are the stored ones.
fn show_event(args: ShowArgs) -> Result<String, String> {
    let text = client(&args.config)?.get_text(&format!("/v1/events/{}", segment(&args.id)))?;
    if args.json {
        return Ok(text);
    }
    event_text(&text)
}

fn event_text(document_text: &str) -> Result<String, String> {
    /// `GET /v1/events/{id}`, read once: `data` as the relay's text, the rest as values.
    #[derive(serde::Deserialize)]
    struct EventDocument {
        #[serde(default)]
        id: Value,
        #[serde(default, rename = "type")]
        event_type: Value,
        #[serde(default)]
        occurred_at: Value,
        #[serde(default)]
        accepted_at: Value,
        #[serde(default)]
        subscriptions: Vec<Value>,
        data: Box<serde_json::value::RawValue>,
        erased_at: Option<String>,
        data_sealed_with_unlisted_key: Option<String>,
        #[serde(default)]
        deliveries: Vec<Value>,
    }
    let document: EventDocument = serde_json::from_str(document_text)
        .map_err(|e| format!("the relay answered a document this command cannot read: {e}"))?;
    let subscriptions: Vec<String> = document.subscriptions.iter().map(text).collect();
    let fields = [
        ("id", text(&document.id)),
        ("type", text(&document.event_type)),
        ("occurred at", text(&document.occurred_at)),
        ("accepted at", text(&document.accepted_at)),
        ("routed to", if subscriptions.is_empty() { "-".to_owned() } else { subscriptions.join(", ") }),
    ];
    let mut lines: Vec<String> = fields.iter().map(|(name, value)| format!("{name:<13}{value}")).collect();
    lines.push(String::new());
    let data = document.data.get();
    if let Some(erased) = &document.erased_at {
        lines.push(format!("data: erased at {erased}"));
    } else if let Some(key) = &document.data_sealed_with_unlisted_key {
        lines.push(format!("data: sealed with store key {key}, which encryption_key does not list"));
    } else {
        lines.push(format!("data ({} bytes, as stored):", data.len()));
        // JSON escapes C0 controls but may hold raw DEL and C1 ones (U+009B is CSI).
        lines.push(crate::terminal::printable(&crate::json::pretty(data)).into_owned());
    }
    let rows: Vec<Vec<String>> = document.deliveries.iter().map(delivery_row).collect();
    lines.push(String::new());
    lines.push(table::render(&DELIVERY_HEADER, &rows));
    Ok(lines.join("\n"))
}

/// Posts to `path_of(id)` for each id, printing `describe(answer)` per success; fails if any id failed.
fn each(
    args: IdsArgs,
    verb: &str,
    path_of: impl Fn(&str) -> String,
    describe: impl Fn(&Value) -> String,
) -> Result<String, String> {
    let client = client(&args.config)?;
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for id in &args.ids {
        match client.post(&path_of(id), &json!({})) {
            Ok(answer) => lines.push(format!("{id}: {}", describe(&answer))),
            Err(message) => refused.push(format!("cannot {verb} {id}: {message}")),
        }
    }
    if refused.is_empty() {
        Ok(lines.join("\n"))
    } else {
        if !lines.is_empty() {
            println!("{}", lines.join("\n"));
        }
        Err(refused.join("\nhookrelay: "))
    }
}

/// A JSON value for a table cell: strings bare, null as "-".
/// A field of an admin document for a human view, with control characters escaped (an error may quote a
/// peer's certificate names, an id is the producer's).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => crate::terminal::printable(s).into_owned(),
        other => other.to_string(),
    }
}

fn last_result(delivery: &Value) -> String {
    match (&delivery["last_status_code"], &delivery["last_error"]) {
        (Value::Null, Value::Null) => "-".to_owned(),
        (_, Value::String(error)) => crate::terminal::printable(error).into_owned(),
        (code, _) => code.to_string(),
    }
}

/// 32 bytes from the OS's CSPRNG, in the Standard Webhooks secret format.
fn new_secret(kind: SecretKind) -> Result<String, String> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|error| format!("the system's random source failed: {error}"))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    Ok(match kind {
        SecretKind::Hmac => format!("whsec_{encoded}"),
        SecretKind::StoreKey => encoded,
        SecretKind::Ed25519 => {
            let key = crate::delivery::sign::SigningKey::from_seed(&key)
                .ok_or_else(|| "ring refused a random ed25519 seed".to_owned())?;
            format!("{}{encoded}\n{}", crate::delivery::sign::SIGNING_KEY_PREFIX, key.public_text())
        }
    })
}
