// A stand-in for a crate from the registry that spawns a task of its own (a pool's worker, a
// connection's driver). Included with `include!` by its absolute path, so rustc names the spawn
// site with that path, as it names a registry crate's.

/// Spawns, from "inside the dependency", a task that never ends.
pub fn start_pool_worker() {
    leak_check::spawn(std::future::pending::<()>());
}
