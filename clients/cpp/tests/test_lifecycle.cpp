// sandboxd's process: missing, failing at start, closed, stopped, killed.
#include <signal.h>

#include <fstream>

#include "fixture.hpp"

namespace errc = sandboxd::errc;
using sandboxd::Verdict;

static bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(sandboxd_missing) {
  CHECK_ERROR(sandboxd::Sandbox("/nonexistent/sandboxd"), errc::unavailable);
  CHECK_ERROR(sandboxd::Sandbox("no-such-sandboxd-on-path"), errc::unavailable);
  fixture::StateDir dir;
  std::string not_executable = dir.path + "/sandboxd";
  std::ofstream(not_executable) << "not a program\n";
  try {
    sandboxd::Sandbox sb(not_executable);
    harness::fail(__FILE__, __LINE__, "a file that is not executable was started");
  } catch (const sandboxd::Error& e) {
    CHECK_EQ(e.code(), std::string(errc::unavailable));
    CHECK(contains(e.message(), not_executable));
    CHECK(contains(e.message(), "Permission denied"));
  }
}

// sandboxd that exits at once: the next request says how, with its stderr.
TEST(sandboxd_exits_at_start) {
  fixture::StateDir dir;
  sandboxd::Options quiet;
  quiet.forward_stderr = false;
  sandboxd::Sandbox sb(fixture::sandboxd_bin(), fixture::args(dir.path, {"--no-such-flag"}), quiet);
  try {
    sb.version();
    harness::fail(__FILE__, __LINE__, "sandboxd with a bad flag answered");
  } catch (const sandboxd::Error& e) {
    CHECK_EQ(e.code(), std::string(errc::unavailable));
    CHECK(contains(e.message(), "exited with status 2"));
    CHECK(contains(e.message(), "no-such-flag"));
  }
  CHECK_EQ(sb.close(), 2);
}

// kill -9 in the middle of a run: the run, and every later request, fail
// with errc::unavailable at once, never hang.
TEST(sandboxd_killed_mid_request) {
  fixture::StateDir dir;
  {
    sandboxd::Sandbox sb(fixture::sandboxd_bin(), fixture::args(dir.path));
    sandboxd::Box box = sb.open_box();
    fixture::install_probe(box);
    sandboxd::Program sleep = fixture::probe({"pause"});
    sleep.real_time_limit = 60s;
    std::future<sandboxd::RunResult> run = box.run_async(sleep);
    std::future<sandboxd::RunResult> queued = box.run_async(fixture::probe({"exit", "0"}));
    std::this_thread::sleep_for(300ms);
    REQUIRE(::kill(sb.pid(), SIGKILL) == 0);
    auto start = std::chrono::steady_clock::now();
    try {
      run.get();
      harness::fail(__FILE__, __LINE__, "the run of a killed sandboxd has a result");
    } catch (const sandboxd::Error& e) {
      CHECK_EQ(e.code(), std::string(errc::unavailable));
      CHECK(contains(e.message(), "killed by signal 9"));
    }
    CHECK(fixture::seconds_since(start) < 5);
    CHECK_ERROR(queued.get(), errc::unavailable);
    CHECK_ERROR(sb.version(), errc::unavailable);
    CHECK_ERROR(box.write_file("x", "y"), errc::unavailable);
    CHECK_EQ(sb.close(), -SIGKILL);
  }
  // The next sandboxd on the state dir removes what the killed one left, and works.
  sandboxd::Sandbox next(fixture::sandboxd_bin(), fixture::args(dir.path));
  sandboxd::Box box0 = next.box(0);
  fixture::install_probe(box0);
  CHECK_EQ(box0.run(fixture::probe({"exit", "0"})).limit_verdict, Verdict::ok);
  CHECK_EQ(next.close(), 0);
}

// SIGTERM: the run in flight is answered with shutting_down, sandboxd exits 0.
TEST(sigterm_answers_shutting_down) {
  fixture::Server s;
  sandboxd::Box box0 = s.sb.box(0);
  fixture::install_probe(box0);
  sandboxd::Program sleep = fixture::probe({"pause"});
  sleep.real_time_limit = 60s;
  std::future<sandboxd::RunResult> run = box0.run_async(sleep);
  std::this_thread::sleep_for(300ms);
  REQUIRE(::kill(s.sb.pid(), SIGTERM) == 0);
  CHECK_ERROR(run.get(), errc::shutting_down);
  CHECK_ERROR(s.sb.version(), errc::unavailable);
  CHECK_EQ(s.sb.close(), 0);
}

// Closing ends sandboxd's input: what is in flight is answered first.
TEST(close_answers_in_flight) {
  fixture::Server s;
  sandboxd::Box box = s.sb.open_box();
  fixture::install_probe(box);
  std::future<sandboxd::RunResult> run = box.run_async(fixture::probe({"spin", "0.3"}));
  CHECK_EQ(s.sb.close(), 0);
  REQUIRE(run.wait_for(0s) == std::future_status::ready);
  CHECK_EQ(run.get().exit_code, std::optional<int>(0));
  try {
    s.sb.version();
    harness::fail(__FILE__, __LINE__, "a closed sandboxd answered");
  } catch (const sandboxd::Error& e) {
    CHECK_EQ(e.code(), std::string(errc::unavailable));
    CHECK(contains(e.message(), "closed"));
  }
}

// A sandboxd that stopped reading (here a shell that closed its stdin and
// lingers): writing to it is an error of the request, not a SIGPIPE that
// ends the judge.
TEST(input_closed_by_sandboxd) {
  sandboxd::Sandbox sb("/bin/sh", {"-c", "exec 0<&-; sleep 0.5"});
  std::this_thread::sleep_for(200ms);
  try {
    sb.version();
    harness::fail(__FILE__, __LINE__, "a closed input answered");
  } catch (const sandboxd::Error& e) {
    CHECK_EQ(e.code(), std::string(errc::unavailable));
    CHECK(contains(e.message(), "exited with status 0"));
  }
  CHECK_EQ(sb.close(), 0);
}
