/* failpoint: test-only crash points, so a fault test can kill a process at
 * an exact step (issue: a worker killed between commit and publish).
 *
 * Normal builds compile failpoint.c without MW_FAILPOINTS: mw_failpoint_crash()
 * does nothing and reads no environment. The test-only program
 * `matchwire-server-failpoints` links its own copy of failpoint.c built with
 * MW_FAILPOINTS=1 (reference/CMakeLists.txt); there the environment variable
 * MW_FAILPOINTS, a comma-separated list of names, arms them.
 *
 * Names in use:
 *   worker_after_commit  the worker's assign callback reported a committed
 *                        match (spec/channel.md CHN-020, CHN-062), before
 *                        the worker does anything else with it. */
#ifndef MW_FAILPOINT_H
#define MW_FAILPOINT_H

/* When the failpoint `name` (borrowed) is armed, logs one line and kills the
 * process with SIGKILL, as `kill -9` would: no exit handlers, nothing
 * flushed. Otherwise returns. */
void mw_failpoint_crash(const char *name);

#endif /* MW_FAILPOINT_H */
