// open_box's network, stats and cancel: as the Python client's tests have them.
#include <future>

#include "fixture.hpp"

namespace errc = sandboxd::errc;
using sandboxd::Verdict;

TEST(open_box_network_loopback) {
  fixture::Server s;
  sandboxd::BoxOptions loopback;
  loopback.network = "loopback";
  {
    sandboxd::Box box = s.sb.open_box(loopback);
    fixture::install_probe(box);
    sandboxd::Program p = fixture::probe({"loopback", "127.0.0.1"});
    p.stdout_file = "out";
    CHECK_EQ(box.run(p).exit_code, std::optional<int>(0));
    CHECK_EQ(box.read_file("out"), std::string("ping\npong\n"));
  }
  sandboxd::Box box0 = s.sb.box(0);  // no network
  fixture::install_probe(box0);
  CHECK_EQ(box0.run(fixture::probe({"loopback", "127.0.0.1"})).exit_code, std::optional<int>(1));
  sandboxd::BoxOptions host;
  host.network = "host";
  CHECK_ERROR(s.sb.open_box(host), errc::invalid_argument);
}

TEST(stats_counts_boxes_and_runs) {
  {
    fixture::Server s;
    sandboxd::Stats before = s.sb.stats();
    CHECK_EQ(before.executor, std::string("native"));
    CHECK(before.uptime > 0s);
    CHECK(before.cgroup.mode == "v1" || before.cgroup.mode == "v2");
    CHECK(!before.cgroup.groups.empty());
    CHECK(!before.cpus);
    {
      sandboxd::Box box = s.sb.open_box();
      fixture::install_probe(box);
      box.run(fixture::probe({"exit", "0"}));
      CHECK_ERROR(box.run(sandboxd::Program({"./nope"}, 1s, 1)), errc::exec_failed);
      sandboxd::Stats after = s.sb.stats();
      CHECK_EQ(after.boxes_open, before.boxes_open + 1);
      CHECK_EQ(after.runs.at("OK"), before.runs.at("OK") + 1);
      CHECK_EQ(after.runs.at("MemoryLimitExceeded"), std::int64_t(0));  // every verdict is a key
      CHECK_EQ(after.run_errors.at("exec_failed"), std::int64_t(1));
      CHECK_EQ(after.runs_running, std::int64_t(0));
      CHECK_EQ(after.runs_queued, std::int64_t(0));
      CHECK(after.parallel >= 1);
    }
  }
  // One sandboxd at a time: each holds the uids of --uid-base.
  fixture::Server pinned({"--cpus", "0"});
  std::optional<sandboxd::Stats::Cpus> cpus = pinned.sb.stats().cpus;
  REQUIRE(cpus);
  CHECK_EQ(cpus->list, std::string("0"));
  CHECK_EQ(cpus->in_use, std::int64_t(0));
}

// wait_running waits until sandboxd runs that many runs (stats is answered at once).
static void wait_running(sandboxd::Sandbox& sb, std::int64_t runs) {
  auto start = std::chrono::steady_clock::now();
  while (sb.stats().runs_running < runs) {
    REQUIRE(fixture::seconds_since(start) < 10);
    std::this_thread::sleep_for(20ms);
  }
}

static sandboxd::Program sleeping() {
  sandboxd::Program p = fixture::probe({"pause"});
  p.real_time_limit = 120s;
  return p;
}

// One thread waits for a sleeping run, another cancels it: the wait ends
// with errc::cancelled at once, and the box runs again, its files kept.
TEST(cancel_a_sleeping_run) {
  fixture::Server s;
  sandboxd::Box box = s.sb.open_box();
  fixture::install_probe(box);
  sandboxd::Cancellable<sandboxd::RunResult> run = box.run_async(sleeping());
  std::string code;
  std::thread waiter([&] {
    try {
      run.get();
    } catch (const sandboxd::Error& e) {
      code = e.code();
    }
  });
  wait_running(s.sb, 1);
  auto start = std::chrono::steady_clock::now();
  run.cancel();
  waiter.join();
  CHECK(fixture::seconds_since(start) < 10);
  CHECK_EQ(code, std::string(errc::cancelled));
  CHECK_EQ(box.run(fixture::probe({"exit", "7"})).exit_code, std::optional<int>(7));
  CHECK_EQ(box.list_files().size(), std::size_t(1));  // the probe
  CHECK_EQ(s.sb.stats().run_errors.at("cancelled"), std::int64_t(1));
}

// A run queued behind another never starts; a run group is ended whole.
TEST(cancel_a_queued_run_and_a_run_group) {
  fixture::Server s;
  sandboxd::Box a = s.sb.open_box(), b = s.sb.open_box();
  for (sandboxd::Box* box : {&a, &b}) fixture::install_probe(*box);
  sandboxd::Cancellable<sandboxd::RunResult> first = a.run_async(sleeping());
  sandboxd::Program queued_program = fixture::probe({"exit", "0"});
  sandboxd::Cancellable<sandboxd::RunResult> queued = a.run_async(queued_program);
  std::vector<sandboxd::Program> programs = {sleeping(), sleeping()};
  programs[0].box = b.id();
  programs[1].box = 0;
  sandboxd::Box box0 = s.sb.box(0);
  fixture::install_probe(box0);
  sandboxd::Cancellable<sandboxd::GroupResult> group = s.sb.run_group_async(programs);
  wait_running(s.sb, 2);
  queued.cancel();
  CHECK_ERROR(queued.get(), errc::cancelled);
  first.cancel();
  CHECK_ERROR(first.get(), errc::cancelled);
  s.sb.cancel(group.id());
  CHECK_ERROR(group.get(), errc::cancelled);
  CHECK_EQ(a.run(fixture::probe({"exit", "0"})).limit_verdict, Verdict::ok);
  CHECK_EQ(b.run(fixture::probe({"exit", "0"})).limit_verdict, Verdict::ok);
}

TEST(cancel_of_an_answered_or_unknown_request) {
  fixture::Server s;
  sandboxd::Box box = s.sb.box(0);
  fixture::install_probe(box);
  sandboxd::Cancellable<sandboxd::RunResult> done = box.run_async(fixture::probe({"exit", "3"}));
  done.wait();
  CHECK_ERROR(done.cancel(), errc::no_such_request);
  CHECK_EQ(done.get().exit_code, std::optional<int>(3));  // its own reply stays
  CHECK_ERROR(s.sb.cancel(std::uint64_t(1) << 40), errc::no_such_request);
  try {
    sandboxd::Cancellable<sandboxd::RunResult>().cancel();
    harness::fail(__FILE__, __LINE__, "cancel of an empty Cancellable did not throw");
  } catch (const std::future_error& e) {
    CHECK(e.code() == std::future_errc::no_state);
  }
  CHECK_EQ(box.run(fixture::probe({"exit", "0"})).exit_code, std::optional<int>(0));
}
