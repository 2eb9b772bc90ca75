//! moto_server for the `aws_` tests.
//!
//! `GRAVEN_MOTO_ENDPOINT` (set by `scripts/moto.sh start`) points the tests at a running
//! server. Without it, the first test that needs moto starts `moto_server -H 127.0.0.1 -p
//! <free port>` for the whole test binary (installing `moto[server]==5.2.1` with pip if
//! `moto_server` is missing), through a small Python wrapper that stops moto when its standard
//! input closes. The binary holds that pipe in a static, so moto goes when the test process
//! exits, however it exits (a panic, an abort, a kill).
//!
//! Isolation: every run of the test binary acts in moto accounts of its own ([`account`]: a
//! random run number, then the test's number), so a second run against a long-lived
//! `moto_server` never meets what the first left; within a run, every test takes its own region
//! ([`region`]) or account, and moto keeps both apart, so tests run in parallel without
//! resetting the server. S3 bucket names are global across accounts: [`bucket_name`] adds the
//! run number.

#![allow(dead_code)] // each test module uses part of the harness

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use graven::aws::provider::{AwsProvider, Config};

/// The moto version the tests are written against.
pub const MOTO_VERSION: &str = "5.2.1";

/// Stops moto when the test binary's end closes this pipe.
const WRAPPER: &str = r#"
import subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    sys.stdin.read()
finally:
    # moto keeps nothing worth a graceful stop, and its server can take seconds to honour SIGTERM.
    p.kill()
    p.wait()
"#;

/// The wrapper process and the pipe that keeps moto alive.
static SERVER: OnceLock<Mutex<Option<(Child, ChildStdin)>>> = OnceLock::new();
static ENDPOINT: OnceLock<String> = OnceLock::new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn has_moto_server() -> bool {
    Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn install_moto() {
    let spec = format!("moto[server]=={MOTO_VERSION}");
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", &spec])
        .status()
        .expect("python3 runs");
    assert!(status.success(), "could not install {spec} with pip");
}

/// One HTTP request to moto; the status code and body.
fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

fn wait_until_up(endpoint: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if http(endpoint, "GET", "/moto-api/").is_ok_and(|(s, _)| s == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server at {endpoint} did not answer within 60 s");
}

fn start() -> String {
    if !has_moto_server() {
        install_moto();
    }
    let port = free_port();
    let mut child = Command::new("python3")
        .args(["-c", WRAPPER, "moto_server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts moto_server");
    let stdin = child.stdin.take().expect("the wrapper's stdin");
    SERVER.get_or_init(|| Mutex::new(Some((child, stdin))));
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until_up(&endpoint);
    endpoint
}

/// moto's endpoint (`http://127.0.0.1:PORT`), starting moto on first use.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| match std::env::var("GRAVEN_MOTO_ENDPOINT") {
        Ok(e) if !e.is_empty() => {
            wait_until_up(&e);
            e
        }
        _ => start(),
    })
}

/// Forgets everything moto holds, in every region (`POST /moto-api/reset`). Only for tests
/// that run alone: the others use their own region.
pub fn reset() {
    let (status, body) = http(endpoint(), "POST", "/moto-api/reset").expect("moto answers");
    assert_eq!(status, 200, "reset: {body}");
}

const REGIONS: &[&str] = &[
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "ap-northeast-3",
    "eu-south-1",
    "af-south-1",
    "me-south-1",
    "ap-east-1",
];
static NEXT_REGION: AtomicUsize = AtomicUsize::new(0);

/// A region no other test of this binary uses, so each test sees an empty cloud.
pub fn region() -> &'static str {
    let i = NEXT_REGION.fetch_add(1, Ordering::SeqCst);
    REGIONS
        .get(i)
        .copied()
        .unwrap_or_else(|| panic!("more than {} aws tests: add regions to the list", REGIONS.len()))
}

/// This run's number: six random digits, drawn once per test binary.
pub fn run() -> u32 {
    static RUN: OnceLock<u32> = OnceLock::new();
    *RUN.get_or_init(|| fastrand::u32(100_000..1_000_000))
}

/// The id of this run's moto account number `n` (12 digits: the run, then `n`). Account 0 is
/// the one [`config`], [`sdk`] and the clients below act in.
pub fn account(n: u32) -> String {
    format!("{:06}{n:06}", run())
}

/// An S3 bucket name of this run (bucket names are global across accounts).
pub fn bucket_name(base: &str) -> String {
    format!("{base}-{}", run())
}

/// Temporary credentials that act in account `id`, from moto's STS (`AssumeRole` into
/// `arn:aws:iam::<id>:role/graven-tests`).
pub async fn credentials_for(id: &str, region: &str) -> aws_sdk_ec2::config::Credentials {
    use aws_sdk_ec2::config::ProvideCredentials as _;
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
    let role = format!("arn:aws:iam::{id}:role/graven-tests");
    aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("graven-tests")
        .configure(&base)
        .build()
        .await
        .provide_credentials()
        .await
        .expect("AssumeRole on moto")
}

/// The credentials of this run's account 0 (fetched once, on a thread of their own so that any
/// caller, async or not, can ask).
fn credentials() -> &'static aws_sdk_ec2::config::Credentials {
    static CREDENTIALS: OnceLock<aws_sdk_ec2::config::Credentials> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(credentials_for(&account(0), "us-east-1"))
        })
        .join()
        .expect("the credentials thread")
    })
}

/// The provider's configuration for moto in `region`, in this run's account 0: fast polling.
pub fn config(region: &str) -> Config {
    let c = credentials();
    Config::default()
        .region(region)
        .endpoint_url(endpoint())
        .static_credentials(c.access_key_id(), c.secret_access_key())
        .session_token(c.session_token().unwrap_or_default())
        .poll_interval(Duration::from_millis(50))
        .wait_timeout(Duration::from_secs(30))
}

/// A provider on moto in `region`.
pub async fn provider(region: &str) -> AwsProvider {
    AwsProvider::new(&config(region)).await.expect("a provider")
}

/// The SDK's configuration for moto in `region` and this run's account 0, for tests that check
/// with the SDK directly.
pub async fn sdk(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint())
        .credentials_provider(credentials().clone())
        .load()
        .await
}

/// An EC2 client on moto.
pub async fn ec2(region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk(region).await)
}

/// An Auto Scaling client on moto.
pub async fn autoscaling(region: &str) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::new(&sdk(region).await)
}

/// An S3 client on moto (path-style addressing).
pub async fn s3(region: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&sdk(region).await).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An image moto offers in `region` (moto ships Amazon's public images).
pub async fn some_image(region: &str) -> String {
    let out =
        ec2(region).await.describe_images().owners("amazon").send().await.expect("DescribeImages");
    let mut ids: Vec<String> =
        out.images().iter().filter_map(|i| i.image_id().map(str::to_owned)).collect();
    ids.sort();
    ids.into_iter().next().expect("moto ships images")
}

/// The availability zones moto knows in `region`, sorted.
pub async fn zones(region: &str) -> Vec<String> {
    let out = ec2(region)
        .await
        .describe_availability_zones()
        .send()
        .await
        .expect("DescribeAvailabilityZones");
    let mut zones: Vec<String> =
        out.availability_zones().iter().filter_map(|z| z.zone_name().map(str::to_owned)).collect();
    zones.sort();
    zones
}
