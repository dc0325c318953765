// run_group: programs in their own boxes joined by pipes (interactive problems).
#include <algorithm>

#include "fixture.hpp"

namespace errc = sandboxd::errc;
using sandboxd::Verdict;

// The request the client sends is exactly the issue's binding shape, which
// PROTOCOL.md will give once sandboxd has run_group.
TEST(run_group_request_shape) {
  sandboxd::Program a({"./interactor"}, 1s, 2);
  a.box = 1;
  a.stderr_file = "log";
  sandboxd::Program b({"./solution"}, 500ms, 1);
  b.box = 2;
  b.memory_limit = 1 << 20;
  nlohmann::json got = sandboxd::detail::run_group_request({a, b}, {{{0, 1}, {1, 0}}, {{1, 1}, {0, 0}}}, 2.5s);
  nlohmann::json want = nlohmann::json::parse(R"({"command": "run_group",
    "programs": [
      {"argv": ["./interactor"], "cpu_time_limit": 1.0, "processes_limit": 2, "box": 1, "stderr": "log"},
      {"argv": ["./solution"], "cpu_time_limit": 0.5, "processes_limit": 1, "box": 2, "memory_limit": 1048576}],
    "pipes": [{"from": {"program": 0, "fd": 1}, "to": {"program": 1, "fd": 0}},
              {"from": {"program": 1, "fd": 1}, "to": {"program": 0, "fd": 0}}],
    "idleness_time_limit": 2.5})");
  CHECK_EQ(got, want);
  CHECK(!sandboxd::detail::run_group_request({a}, {}, std::nullopt).contains("idleness_time_limit"));
}

TEST(run_group) {
  fixture::Server s;
  sandboxd::Box boxes[2] = {s.sb.open_box(), s.sb.open_box()};
  // The interactor asks 3 and expects 9; the solution squares what it reads.
  sandboxd::Program interactor({"/bin/sh", "-c", "echo 3; read x; test \"$x\" = 9"}, 2s, 4);
  sandboxd::Program solution({"/bin/sh", "-c", "read n; echo $((n * n))"}, 2s, 4);
  interactor.box = boxes[0].id();
  solution.box = boxes[1].id();
  interactor.real_time_limit = solution.real_time_limit = 10s;
  std::vector<sandboxd::Pipe> both_ways = {{{0, 1}, {1, 0}}, {{1, 1}, {0, 0}}};
  sandboxd::GroupResult g;
  try {
    g = s.sb.run_group({interactor, solution}, both_ways);
  } catch (const sandboxd::Error& e) {
    if (e.code() != errc::unknown_command) throw;
    throw harness::Skip{"sandboxd has no run_group yet: it answers unknown_command (" + e.message() + ")"};
  }
  REQUIRE(g.results.size() == 2);
  for (const sandboxd::RunResult& r : g.results) {
    CHECK_EQ(r.limit_verdict, Verdict::ok);
    CHECK_EQ(r.exit_code, std::optional<int>(0));
  }
  std::vector<int> order = g.exit_order;
  std::sort(order.begin(), order.end());
  CHECK(order == (std::vector<int>{0, 1}));

  // Both wait for the other: the group's idleness limit ends the deadlock.
  interactor.argv = solution.argv = {"/bin/sh", "-c", "read x"};
  auto start = std::chrono::steady_clock::now();
  g = s.sb.run_group({interactor, solution}, both_ways, 500ms);
  CHECK(fixture::seconds_since(start) < 5);
  REQUIRE(g.results.size() == 2);
  CHECK(g.results[0].limit_verdict == Verdict::idleness_time_limit_exceeded ||
        g.results[1].limit_verdict == Verdict::idleness_time_limit_exceeded);
  CHECK_EQ(g.exit_order.size(), std::size_t(2));
}
