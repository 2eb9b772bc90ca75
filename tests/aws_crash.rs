//! Crash consistency on `moto_server`: applies of the `web` stack, run as a child process with
//! `--target aws`, killed with SIGKILL at random moments; each kill is followed by another
//! apply. After a final apply, the account holds exactly the stack's resources (no orphan, no
//! duplicate, by the `graven:stack` and `graven:id` tags, across every kind of the catalog),
//! the state records them, and `plan --detailed-exitcode` finds nothing to do.
//!
//! The stack of the local crash test (`apply_stack::Crash`) places its subnets in the local
//! cloud's zones and runs standalone instances of a `server` image; this test uses the `web`
//! example instead (every kind a rollout needs: VPC, subnets, security group, launch template,
//! group), changed from round to round by its inputs so that every apply has work to do: the
//! image version (a new template version and a roll), the capacity (an update in place), and
//! the VPC's CIDR block (the whole network replaced, create before destroy).
//!
//! A killed run's create can still be in flight at the cloud when the next run looks its token
//! up (moto is slow to create a group with its instances): the next run finds nothing, keeps
//! the token (`State::retry_tokens`) and sends the create again with it, and the name Graven
//! generates from the token makes the second create adopt the first instead of duplicating it.
//!
//! Two deterministic tests below cover the deletes of old objects after an interrupted
//! replacement (the deletes of one resource ran at once and undid each other's records).

use std::fs::File;
use std::io::BufRead as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::apply_support::{Program, Project};
use crate::aws_web::{Account, WEB_REGION, check_web};

/// Kills to make.
const KILLS: u32 = 8;

/// The first kill window: a kill lands at a random moment within this many milliseconds of
/// the start of an apply. The window then follows the applies it observes (see below).
const FIRST_WINDOW_MS: f64 = 1_000.0;
/// The window never shrinks below this (the program's start) nor grows above that.
const WINDOW_BOUNDS_MS: (f64, f64) = (60.0, 6_000.0);

/// The stack inputs of round `round`.
fn vars(round: u32) -> [(&'static str, String); 3] {
    let version = if round % 2 == 0 { "1.4.0" } else { "1.5.0" };
    let capacity = 2 + (round / 2) % 2;
    let cidr = if (round / 3) % 2 == 0 { "10.0.0.0/16" } else { "10.1.0.0/16" };
    [("version", version.to_owned()), ("capacity", capacity.to_string()), ("cidr", cidr.to_owned())]
}

fn args(round: u32, command: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = ["--target", "aws"].iter().map(|s| (*s).to_owned()).collect();
    out.extend(command.iter().map(|s| (*s).to_owned()));
    for (k, v) in vars(round) {
        out.push("--var".into());
        out.push(format!("{k}={v}"));
    }
    out
}

#[test]
fn sigkill_at_random_moments_on_moto_loses_nothing_and_duplicates_nothing() {
    let account = Account::new(2, WEB_REGION);
    let images = account.register_images("web", &["1.4.0", "1.5.0"]);
    let project = Project::new(Program::Web);
    let seed = std::env::var("GRAVEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "aws crash test: seed {seed} (rerun with GRAVEN_CRASH_SEED={seed}), project {}",
        project.root().display()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let (mut kills, mut completed, mut attempt, mut round) = (0u32, 0u32, 0u32, 0u32);
    let mut longest = Duration::ZERO;
    let mut adopted = 0; // creates of killed applies found by their token tag and adopted
    // The kill comes at a random time below `window`, which adapts to the machine: an apply
    // that ends before its kill shrinks it towards that apply's duration (a fast, idle
    // machine), a kill grows it a little (a slow or loaded one). So most attempts are cut
    // short, anywhere in the apply, whatever the machine's speed; as `tests/apply_crash.rs`
    // does for the local target.
    let mut window = FIRST_WINDOW_MS;
    // Each completed apply moves on to the next round, which changes the stack; after a kill,
    // the next apply resumes the same round or, as often, moves on too (a changed stack on top
    // of an interrupted apply). So kills land in fresh applies and in applies that resume
    // killed ones.
    while kills < KILLS {
        assert!(
            attempt < 4 * KILLS,
            "only {kills} kills in {attempt} attempts (seed {seed}, window {window:.0} ms): the applies end before their kills"
        );
        let args = args(round, &["apply", "--auto-approve"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = project.command(&args);
        account.env(&mut cmd);
        // Each attempt's log is kept in the project (kept itself when the test fails).
        let log = project.root().join(format!("attempt-{attempt}.log"));
        let begun = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .expect("the stack program starts");
        // An apply of a round on moto takes 0.1 to 2 s (more when moto is busy): the program
        // starts, lists the images, reads the state's resources back, then works.
        let kill_at = Duration::from_secs_f64(rng.f64() * window / 1e3);
        let exited = loop {
            match child.try_wait().expect("the child's status") {
                Some(status) => break Some(status),
                None if begun.elapsed() >= kill_at => break None,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        eprintln!(
            "attempt {attempt} (round {round}): {} after {} ms (window {window:.0} ms)",
            if exited.is_some() { "completed" } else { "killed" },
            begun.elapsed().as_millis()
        );
        if let Some(status) = exited {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                status.success(),
                "apply of round {round} failed (seed {seed}, after {kills} kills):\n{stderr}"
            );
            let took = begun.elapsed();
            longest = longest.max(took);
            let took_ms = took.as_secs_f64() * 1e3;
            window = (window * 0.8).min(took_ms * 1.2).max(WINDOW_BOUNDS_MS.0);
            adopted += stderr.matches("adopted `").count();
            completed += 1;
            round += 1;
        } else {
            child.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on unix
            child.wait().expect("the child is reaped"); // so its pid no longer looks alive
            kills += 1;
            window = (window * 1.1).min(WINDOW_BOUNDS_MS.1);
            round += u32::from(rng.bool());
        }
        attempt += 1;
    }
    let final_args = args(round, &["apply", "--auto-approve"]);
    let final_args: Vec<&str> = final_args.iter().map(String::as_str).collect();
    account.run(&project, &final_args).expect_code(0);
    let vars = vars(round);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let converged = check_web(&account, &project, &pairs, &images[&vars[0].1]);
    let plan = args(round, &["plan", "--detailed-exitcode"]);
    let plan: Vec<&str> = plan.iter().map(String::as_str).collect();
    account.run(&project, &plan).expect_code(0);
    let objects: Vec<(&str, usize)> =
        converged.objects.iter().map(|(k, v)| (*k, v.len())).collect();
    eprintln!(
        "aws crash test (seed {seed}): {kills} kills, {completed} applies completed (longest {:.1}s, {adopted} adoptions), {attempt} attempts in {:.1}s; final round {round}: {objects:?} and {} fleet instances",
        longest.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        converged.fleet_instances.len()
    );
}

/// Old objects of replacements the state records but the cloud no longer has, as `id physical`.
fn stale_deposed(account: &Account, project: &Project) -> Vec<String> {
    let state = project.state().expect("a state");
    let cloud = account.seen(project.stack());
    let mut gone = Vec::new();
    for r in state.resources.values() {
        for d in &r.deposed {
            if !cloud.of(&r.kind).iter().any(|o| o.physical == d.physical_id) {
                gone.push(format!("{} {}", r.id, d.physical_id));
            }
        }
    }
    gone
}

/// Applies `round` with its stack inputs but `cidr`, and kills the apply when the fleet's roll
/// starts: the new network exists, the old one (VPC, subnets; the security group maybe) is
/// left for a later run to delete, since it goes only after the roll.
fn interrupted_replacement(account: &Account, project: &Project, cidr: &str) {
    let mut args = args(0, &["apply", "--auto-approve"]);
    args.push("--var".into());
    args.push(format!("cidr={cidr}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = project.command(&args);
    account.env(&mut cmd);
    let mut child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("the stack program starts");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("its stderr"));
    let mut printed = Vec::new();
    for line in stderr.lines() {
        let line = line.expect("a line");
        if line.contains("roll fleet: started") {
            child.kill().expect("SIGKILL");
            break;
        }
        printed.push(line);
    }
    let status = child.wait().expect("the child is reaped");
    assert!(status.code().is_none(), "the apply ended before its roll:\n{}", printed.join("\n"));
    let state = project.state().expect("a state");
    let vpc = &state.resources["vpc"];
    assert_eq!(vpc.deposed.len(), 1, "the old VPC is left to delete: {vpc:?}");
}

/// Two replacements of the network, the first interrupted: the second apply deletes both old
/// networks, and the state must not record them any more.
#[test]
fn an_interrupted_replacement_replaced_again_leaves_no_old_object_recorded() {
    let account = Account::new(3, WEB_REGION);
    let images = account.register_images("web", &["1.4.0"]);
    let project = Project::new(Program::Web);
    let first = args(0, &["apply", "--auto-approve"]);
    account.run(&project, &first.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
    interrupted_replacement(&account, &project, "10.1.0.0/16");
    // Back to the first block: the VPC of the killed apply is replaced in turn, so `vpc` has
    // two old objects to delete (and so do the subnets), deleted at once.
    let run = account.run(&project, &first.iter().map(String::as_str).collect::<Vec<_>>());
    run.expect_code(0);
    assert_eq!(stale_deposed(&account, &project), Vec::<String>::new(), "{}", run.stdout);
    let vars = vars(0);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    check_web(&account, &project, &pairs, &images["1.4.0"]);
    let plan = args(0, &["plan", "--detailed-exitcode"]);
    account.run(&project, &plan.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
}

/// `destroy` after an interrupted replacement: the current and the old objects of a resource
/// are deleted at once, and the state must end empty.
#[test]
fn destroy_after_an_interrupted_replacement_forgets_everything() {
    let account = Account::new(5, WEB_REGION);
    account.register_images("web", &["1.4.0"]);
    let project = Project::new(Program::Web);
    let first = args(0, &["apply", "--auto-approve"]);
    account.run(&project, &first.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
    interrupted_replacement(&account, &project, "10.1.0.0/16");
    let destroy = args(0, &["destroy", "--auto-approve"]);
    let run = account.run(&project, &destroy.iter().map(String::as_str).collect::<Vec<_>>());
    run.expect_code(0);
    let seen = account.seen(project.stack());
    assert!(seen.describe().is_empty(), "left after destroy: {:?}", seen.describe());
    let state = project.state().expect("a state");
    let left: Vec<String> = state
        .resources
        .values()
        .map(|r| format!("{} {} (+{} old)", r.id, r.physical_id, r.deposed.len()))
        .collect();
    assert!(left.is_empty(), "the state still records {left:?}\n{}", run.stdout);
}
