// run: verdicts, metrics, stdio and environment, through the client.
#include "fixture.hpp"

using sandboxd::Verdict;

TEST(version) {
  fixture::Server s;
  sandboxd::Version v = s.sb.version();
  CHECK_EQ(v.protocol, 1);
  CHECK(!v.version.empty());
}

TEST(run_verdicts) {
  fixture::Server s;
  sandboxd::Box box = s.sb.box(0);
  fixture::install_probe(box);

  sandboxd::RunResult r = box.run(fixture::probe({"exit", "0"}));
  CHECK_EQ(r.limit_verdict, Verdict::ok);
  CHECK_EQ(r.exit_code, std::optional<int>(0));
  // A run this small may measure no CPU time or memory (cgroup v1 counts above what the box held).
  CHECK(r.real_time > 0s);
  CHECK(r.cpu_time >= 0s && r.idleness_time >= 0s && r.memory >= 0);

  r = box.run(fixture::probe({"exit", "123"}));
  CHECK_EQ(r.limit_verdict, Verdict::ok);
  CHECK_EQ(r.exit_code, std::optional<int>(123));

  r = box.run(fixture::probe({"segv"}));
  CHECK_EQ(r.limit_verdict, Verdict::signaled);
  CHECK_EQ(r.exit_code, std::optional<int>(-11));

  sandboxd::Program cpu = fixture::probe({"spin", "0"});
  cpu.cpu_time_limit = 200ms;
  r = box.run(cpu);
  CHECK_EQ(r.limit_verdict, Verdict::cpu_time_limit_exceeded);
  CHECK_EQ(r.exit_code, std::optional<int>());
  CHECK(r.cpu_time >= 200ms && r.cpu_time < 1s);

  sandboxd::Program real = fixture::probe({"pause"});
  real.real_time_limit = 300ms;
  r = box.run(real);
  CHECK_EQ(r.limit_verdict, Verdict::real_time_limit_exceeded);
  CHECK(r.real_time >= 300ms && r.real_time < 5s);
  CHECK(r.idleness_time > 200ms);

  sandboxd::Program idle = fixture::probe({"pause"});
  idle.idleness_time_limit = 300ms;
  r = box.run(idle);
  CHECK_EQ(r.limit_verdict, Verdict::idleness_time_limit_exceeded);
  CHECK(r.idleness_time >= 250ms);

  sandboxd::Program mem = fixture::probe({"mem", "256"});
  mem.memory_limit = 64 << 20;
  r = box.run(mem);
  CHECK_EQ(r.limit_verdict, Verdict::memory_limit_exceeded);
  CHECK(r.memory >= 60 << 20 && r.memory <= 64 << 20);

  mem.memory_limit = 512 << 20;
  r = box.run(mem);
  CHECK_EQ(r.limit_verdict, Verdict::ok);
  CHECK(r.memory >= 256 << 20);
}

TEST(run_stdio_and_env) {
  fixture::Server s;
  sandboxd::Box box = s.sb.open_box();
  fixture::install_probe(box);
  box.write_file("in.txt", "line one\nline two\n");

  sandboxd::Program cat = fixture::probe({"cat"});
  cat.stdin_file = "in.txt";
  cat.stdout_file = "out.txt";
  cat.stderr_file = "err.txt";
  sandboxd::RunResult r = box.run(cat);
  CHECK_EQ(r.exit_code, std::optional<int>(0));
  CHECK_EQ(box.read_file("out.txt"), std::string("line one\nline two\n"));
  CHECK_EQ(box.read_file("err.txt"), std::string("done\n"));

  // Given, the environment is exactly env.
  sandboxd::Program env({"/bin/sh", "-c", "printf '%s|%s|' \"$GREETING\" \"${HOME-unset}\"; env | wc -l"}, 1s, 4);
  env.env = std::map<std::string, std::string>{{"GREETING", "hello, box"}};
  env.stdout_file = "env.txt";
  CHECK_EQ(box.run(env).exit_code, std::optional<int>(0));
  // sh adds PWD (and may add others), never HOME.
  std::string out = box.read_file("env.txt");
  CHECK_EQ(out.substr(0, out.rfind('|') + 1), std::string("hello, box|unset|"));

  // Program::box is what Sandbox::run goes by; Box::run always uses its own box.
  sandboxd::Program where({"/bin/sh", "-c", "test -x probe"}, 1s, 4);
  where.box = box.id();
  CHECK_EQ(s.sb.run(where).exit_code, std::optional<int>(0));
  where.box = 0;
  CHECK_EQ(s.sb.run(where).exit_code, std::optional<int>(1));
  CHECK_EQ(box.run(where).exit_code, std::optional<int>(0));
}

TEST(per_run_limits) {
  fixture::Server s;
  sandboxd::Box box = s.sb.box(0);

  // file_size_limit is the output limit: past it, SIGXFSZ.
  sandboxd::Program yes({"yes"}, 5s, 4);
  yes.stdout_file = "out.txt";
  yes.file_size_limit = 1 << 20;
  sandboxd::RunResult r = box.run(yes);
  CHECK_EQ(r.limit_verdict, Verdict::signaled);
  CHECK_EQ(r.exit_code, std::optional<int>(-25));

  // The stack and open files bounds reach the program's rlimits.
  sandboxd::Program limits({"/bin/sh", "-c", "ulimit -s; ulimit -n"}, 1s, 4);
  limits.stack_limit = 16 << 20;
  limits.open_files_limit = 50;
  limits.stdout_file = "limits.txt";
  CHECK_EQ(box.run(limits).exit_code, std::optional<int>(0));
  CHECK_EQ(box.read_file("limits.txt"), std::string("16384\n50\n"));
}
