// Error replies become sandboxd::Error with sandboxd's code, and the
// session goes on after each.
#include "fixture.hpp"

namespace errc = sandboxd::errc;

TEST(error_codes) {
  fixture::Server s;
  sandboxd::Box box0 = s.sb.box(0);

  CHECK_ERROR(s.sb.call({{"command", "frobnicate"}}), errc::unknown_command);
  CHECK_ERROR(s.sb.call({{"command", "run"},
                         {"argv", nlohmann::json::array({"/bin/true"})},
                         {"cpu_limit", 1},
                         {"processes_limit", 1}}),
              errc::unknown_field);
  CHECK_ERROR(box0.read_file("../../etc/passwd"), errc::invalid_argument);
  sandboxd::Program no_cpu;
  no_cpu.argv = {"/bin/true"};
  no_cpu.processes_limit = 1;
  CHECK_ERROR(box0.run(no_cpu), errc::missing_limit);
  sandboxd::Program zero({"/bin/true"}, 0s, 1);
  CHECK_ERROR(box0.run(zero), errc::invalid_argument);
  CHECK_ERROR(s.sb.box(999).run(sandboxd::Program({"/bin/true"}, 1s, 1)), errc::no_such_box);
  CHECK_ERROR(box0.read_file("nothing-here"), errc::no_such_file);
  CHECK_ERROR(box0.remove_file("nothing-here"), errc::no_such_file);
  CHECK_ERROR(box0.run(sandboxd::Program({"./not-a-program"}, 1s, 1)), errc::exec_failed);
  sandboxd::Program rt({"/bin/true"}, 1s, 1);
  rt.runtime = "no-such-runtime";
  CHECK_ERROR(box0.run(rt), errc::no_such_runtime);
  CHECK_ERROR(s.sb.remove_runtime("no-such-runtime"), errc::no_such_runtime);
  CHECK_ERROR(s.sb.box(0).close(), errc::invalid_argument);  // box 0 cannot be closed

  sandboxd::Box small = s.sb.open_box(sandboxd::BoxOptions{64 << 10, std::nullopt, std::nullopt, std::nullopt});
  CHECK_ERROR(small.write_file("big", std::string(1 << 20, 'x')), errc::quota_exceeded);
  CHECK_ERROR(
      s.sb.open_box(sandboxd::BoxOptions{std::nullopt, std::nullopt, std::vector<std::string>{"/"}, std::nullopt}),
      errc::invalid_argument);

  // The raw call returns the reply without its id.
  nlohmann::json path = s.sb.call({{"command", "box_path"}, {"box", small.id()}});
  CHECK(path.is_object() && path.size() == 1 && path.at("path").is_string());

  // Every code came with a message, and the session still works.
  CHECK_EQ(box0.run(sandboxd::Program({"/bin/true"}, 1s, 1)).exit_code, std::optional<int>(0));
  try {
    box0.read_file("nothing-here");
  } catch (const sandboxd::Error& e) {
    CHECK_EQ(e.code(), std::string("no_such_file"));
    CHECK(std::string(e.what()).find("no_such_file: ") == 0);
  }
}

// A request line longer than sandboxd's --max-line is refused by the client,
// with sandboxd's own code: sandboxd would answer it without an id, which
// no request in flight could be told from.
TEST(line_too_long) {
  for (std::vector<std::string> flag : {std::vector<std::string>{"--max-line", "4096"}, {"-max-line=4096"}}) {
    fixture::Server s(flag);
    sandboxd::Box box0 = s.sb.box(0), other = s.sb.open_box();
    sandboxd::Program sleep({"/bin/sleep", "0.5"}, 1s, 1);
    std::future<sandboxd::RunResult> in_flight = other.run_async(sleep);
    CHECK_EQ(box0.write_file("small", std::string(2000, 'x')), std::int64_t(2000));
    CHECK_ERROR(box0.write_file("large", std::string(4000, 'x')), errc::line_too_long);
    CHECK_EQ(in_flight.get().exit_code, std::optional<int>(0));
    CHECK_EQ(box0.read_file("small").size(), std::size_t(2000));
  }
}

// Strings must be UTF-8 to go into JSON: the client says so before sending.
TEST(invalid_utf8_argument) {
  fixture::Server s;
  CHECK_ERROR(s.sb.run(sandboxd::Program({"/bin/echo", "\xff\xfe"}, 1s, 1)), errc::invalid_argument);
  CHECK_EQ(s.sb.run(sandboxd::Program({"/bin/echo", "h\xc3\xa9"}, 1s, 1)).exit_code, std::optional<int>(0));
}

// No reply within Options::timeout is errc::timeout; the late reply is
// dropped and the session goes on.
TEST(timeout) {
  sandboxd::Options options;
  options.timeout = 1s;
  fixture::Server s({}, options);
  sandboxd::Box box0 = s.sb.box(0);
  fixture::install_probe(box0);
  sandboxd::Program slow = fixture::probe({"pause"});
  slow.real_time_limit = 3s;
  auto start = std::chrono::steady_clock::now();
  CHECK_ERROR(box0.run(slow), errc::timeout);
  double waited = fixture::seconds_since(start);
  CHECK(waited >= 1 && waited < 2);
  // The next request on the box waits for the slow run to end (past the timeout)...
  CHECK_ERROR(box0.run(fixture::probe({"exit", "7"})), errc::timeout);
  std::this_thread::sleep_for(1500ms);
  // ...and later ones are answered, their replies matched to them.
  CHECK_EQ(box0.run(fixture::probe({"exit", "8"})).exit_code, std::optional<int>(8));
}
