// Pipelining: requests carry ids, replies come as runs end and are matched
// to their requests, and several threads drive several boxes at once.
#include <future>

#include "fixture.hpp"

using sandboxd::Verdict;

// Each thread drives its own box: every reply, file and exit code is the
// thread's own, and runs that sleep overlap (they need no CPU).
TEST(two_boxes_from_two_threads) {
  fixture::Server s({"--parallel", "2"});
  sandboxd::Box boxes[2] = {s.sb.open_box(), s.sb.open_box()};
  for (sandboxd::Box& box : boxes) fixture::install_probe(box);

  auto drive = [](sandboxd::Box& box, int tag) {
    for (int i = 0; i < 20; ++i) {
      std::string content = "box " + std::to_string(box.id()) + " round " + std::to_string(i) + "\n";
      box.write_file("note", content);
      CHECK_EQ(box.read_file("note"), content);
      CHECK_EQ(box.run(fixture::probe({"exit", std::to_string(tag * 100 + i)})).exit_code,
               std::optional<int>(tag * 100 + i));
    }
  };
  std::thread other(drive, std::ref(boxes[1]), 2);
  drive(boxes[0], 1);
  other.join();

  auto sleep = [](sandboxd::Box& box) {
    sandboxd::Program p = fixture::probe({"pause"});
    p.real_time_limit = 2s;
    CHECK_EQ(box.run(p).limit_verdict, Verdict::real_time_limit_exceeded);
  };
  auto start = std::chrono::steady_clock::now();
  std::thread sleeper(sleep, std::ref(boxes[1]));
  sleep(boxes[0]);
  sleeper.join();
  // One after the other, the two sleeps take 4 s.
  double took = fixture::seconds_since(start);
  CHECK(took < 3.5);
  if (took >= 3.5) std::cerr << "the two sleeps took " << took << " s" << std::endl;
}

// A reply that comes first is matched to its own request, whatever the order sent.
TEST(replies_out_of_order) {
  fixture::Server s({"--parallel", "2"});
  sandboxd::Box slow_box = s.sb.open_box(), fast_box = s.sb.open_box();
  fixture::install_probe(slow_box);
  fixture::install_probe(fast_box);
  sandboxd::Program sleep = fixture::probe({"pause"});
  sleep.real_time_limit = 1s;

  std::future<sandboxd::RunResult> slow = slow_box.run_async(sleep);
  std::future<sandboxd::RunResult> fast = fast_box.run_async(fixture::probe({"exit", "3"}));
  REQUIRE(fast.wait_for(900ms) == std::future_status::ready);
  CHECK(slow.wait_for(0s) != std::future_status::ready);
  CHECK_EQ(fast.get().exit_code, std::optional<int>(3));
  CHECK_EQ(slow.get().limit_verdict, Verdict::real_time_limit_exceeded);

  // Many requests in flight on one box are answered in order, each its own.
  std::vector<std::future<sandboxd::RunResult>> runs;
  for (int i = 0; i < 50; ++i) runs.push_back(fast_box.run_async(fixture::probe({"exit", std::to_string(i)})));
  std::future<nlohmann::json> raw = s.sb.call_async({{"command", "list_files"}, {"box", fast_box.id()}});
  for (int i = 0; i < 50; ++i) CHECK_EQ(runs[std::size_t(i)].get().exit_code, std::optional<int>(i));
  CHECK_EQ(raw.get().at("entries").size(), std::size_t(1));
}
