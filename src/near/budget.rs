//! The near-cache's bound when the config leaves it to the server (`near.max_bytes = 0`, the
//! default), from the memory this process may use: a quarter of its cgroup's limit where one
//! binds (a container sized for it), else 1/32 of the machine's memory (shared with Redis, the
//! store and whatever else runs there), within a fixed floor and ceiling.

use std::path::Path;

/// The share of a machine's memory: 768 MiB on 24 GiB, 256 MiB on 8 GiB.
const MACHINE_SHARE: u64 = 32;
/// The share of a container's limit: 256 MiB in 1 GiB (the server's own needs besides the
/// near-cache are about 300 MB under load: bench/RESULTS.md).
const LIMIT_SHARE: u64 = 4;
/// Floor: below this the feed head and a few hundred users' lists no longer fit.
pub const MIN_BYTES: u64 = 64 << 20;
/// Ceiling: past this a single instance gains little (bench/NOTES.md: 512 MiB holds the
/// feed's working set of 100,000 active viewers), and the pages the allocator keeps after the
/// near-cache's churn grow with the bound (452 MB beside a full 753 MiB at scale 10).
pub const MAX_BYTES: u64 = 1 << 30;
/// When the memory cannot be read (not Linux).
pub const FALLBACK_BYTES: u64 = 256 << 20;

/// The memory the process may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usable {
    /// The machine's (MemTotal): no cgroup limit below it.
    Machine(u64),
    /// A cgroup's limit, below the machine's memory.
    Limit(u64),
}

/// The bound in use and how it was chosen (for the start-up log).
pub fn resolve(configured: u64) -> (u64, String) {
    if configured > 0 {
        return (configured, "near.max_bytes".into());
    }
    match usable_memory(Path::new("/")) {
        Some(u) => (share(u), describe(u)),
        None => (
            FALLBACK_BYTES,
            "fallback: the usable memory could not be read".into(),
        ),
    }
}

fn describe(u: Usable) -> String {
    match u {
        Usable::Machine(m) => format!("1/{MACHINE_SHARE} of the machine's {} MiB", m >> 20),
        Usable::Limit(m) => format!("1/{LIMIT_SHARE} of the cgroup limit, {} MiB", m >> 20),
    }
}

/// The default bound for `u`, within [`MIN_BYTES`, `MAX_BYTES`].
pub fn share(u: Usable) -> u64 {
    let b = match u {
        Usable::Machine(m) => m / MACHINE_SHARE,
        Usable::Limit(m) => m / LIMIT_SHARE,
    };
    b.clamp(MIN_BYTES, MAX_BYTES)
}

/// The machine's memory (MemTotal), or this process's cgroup memory limit (v2 `memory.max`,
/// or v1 `memory.limit_in_bytes`) where that is lower; read under `root` (`/` but in tests).
pub fn usable_memory(root: &Path) -> Option<Usable> {
    let total = std::fs::read_to_string(root.join("proc/meminfo"))
        .ok()
        .and_then(|s| meminfo_total(&s));
    let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup"))
        .ok()
        .and_then(|s| cgroup_limit(root, &s));
    match (total, cgroup) {
        (Some(t), Some(c)) if c < t => Some(Usable::Limit(c)),
        (Some(t), _) => Some(Usable::Machine(t)),
        (None, Some(c)) => Some(Usable::Limit(c)),
        (None, None) => None,
    }
}

/// `MemTotal:  24615428 kB` in bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The tightest memory limit on the way from the process's cgroup up to the root of the
/// cgroup file system (a parent's limit binds its children). In a container the file system's
/// root is the container's cgroup, so its own `memory.max` is read too.
fn cgroup_limit(root: &Path, proc_cgroup: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut take = |v: Option<u64>| {
        if let Some(v) = v {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    };
    for line in proc_cgroup.lines() {
        // "0::/path" (v2) or "4:memory:/path" (v1)
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let (mut dir, file) = if controllers.is_empty() {
            (root.join("sys/fs/cgroup"), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("sys/fs/cgroup/memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        take(read_limit(&dir.join(file)));
        for part in path.split('/').filter(|p| !p.is_empty() && *p != "..") {
            dir.push(part);
            take(read_limit(&dir.join(file)));
        }
    }
    best
}

/// A limit file's value; `max` (v2) or a v1 "unlimited" (close to i64::MAX) reads as none.
fn read_limit(file: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(file).ok()?;
    let v: u64 = s.trim().parse().ok()?;
    (v > 0 && v < (1 << 60)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("dl-budget-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const MEMINFO: &str = "MemTotal:       25165824 kB\nMemFree:         1000 kB\n";

    #[test]
    fn share_is_clamped() {
        assert_eq!(share(Usable::Machine(24 << 30)), 768 << 20);
        assert_eq!(share(Usable::Machine(8 << 30)), 256 << 20);
        assert_eq!(share(Usable::Machine(1 << 30)), MIN_BYTES);
        assert_eq!(share(Usable::Machine(256 << 30)), MAX_BYTES);
        assert_eq!(share(Usable::Limit(1 << 30)), 256 << 20);
        assert_eq!(share(Usable::Limit(128 << 20)), MIN_BYTES);
        assert_eq!(share(Usable::Limit(16 << 30)), MAX_BYTES);
    }

    #[test]
    fn configured_bound_wins() {
        assert_eq!(resolve(123_456).0, 123_456);
    }

    #[test]
    fn machine_memory_without_a_limit() {
        let root = tmp("host");
        write(&root, "proc/meminfo", MEMINFO);
        write(
            &root,
            "proc/self/cgroup",
            "0::/user.slice/session-1.scope\n",
        );
        write(&root, "sys/fs/cgroup/user.slice/memory.max", "max\n");
        assert_eq!(usable_memory(&root), Some(Usable::Machine(24 << 30)));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_container_limit_binds_v2() {
        let root = tmp("v2");
        write(&root, "proc/meminfo", MEMINFO);
        // inside a container: the namespace's root is the container's cgroup
        write(&root, "proc/self/cgroup", "0::/\n");
        write(&root, "sys/fs/cgroup/memory.max", "2147483648\n");
        assert_eq!(usable_memory(&root), Some(Usable::Limit(2 << 30)));
        // a parent's limit binds a child's looser one
        write(&root, "proc/self/cgroup", "0::/pods/app\n");
        write(&root, "sys/fs/cgroup/memory.max", "max\n");
        write(&root, "sys/fs/cgroup/pods/memory.max", "1073741824\n");
        write(&root, "sys/fs/cgroup/pods/app/memory.max", "4294967296\n");
        assert_eq!(usable_memory(&root), Some(Usable::Limit(1 << 30)));
        assert_eq!(share(usable_memory(&root).unwrap()), 256 << 20);
        // a limit above the machine's memory does not bind
        write(&root, "sys/fs/cgroup/pods/memory.max", "68719476736\n");
        write(&root, "sys/fs/cgroup/pods/app/memory.max", "max\n");
        assert_eq!(usable_memory(&root), Some(Usable::Machine(24 << 30)));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_container_limit_binds_v1() {
        let root = tmp("v1");
        write(&root, "proc/meminfo", MEMINFO);
        write(
            &root,
            "proc/self/cgroup",
            "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
        );
        write(
            &root,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            &root,
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "4294967296\n",
        );
        assert_eq!(usable_memory(&root), Some(Usable::Limit(4 << 30)));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn unreadable_memory_falls_back() {
        let root = tmp("none");
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(usable_memory(&root), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
