// Runtimes through the client, with the host's real nix daemon, offline: the
// shell.nix is built from builtins only. Without nix the test skips, saying why.
#include "fixture.hpp"

namespace errc = sandboxd::errc;

static sandboxd::Package package(const std::string& name, const std::string& nix_shell) {
  sandboxd::Package p;
  p.name = name;
  p.nix_shell = nix_shell;
  p.wall_time = 60s;
  p.cpu_time = 30s;
  p.extra_time = 500ms;
  p.memory = 512000;
  p.max_number_of_processes = 64;
  p.max_open_files = 256;
  p.max_file_size = 65536;
  return p;
}

static const char* const greeting_nix = R"(derivation {
  name = "cpp-client-runtime"; system = builtins.currentSystem; builder = "/bin/sh";
  GREETING = "hello from a runtime";
}
)";

static std::vector<std::string> names(const std::vector<sandboxd::Runtime>& runtimes) {
  std::vector<std::string> out;
  for (const sandboxd::Runtime& rt : runtimes) out.push_back(rt.name);
  return out;
}

TEST(runtimes) {
  fixture::Server s({"--nix-config", "substituters ="});
  sandboxd::InstallResult installed;
  try {
    installed = s.sb.install_package(package("greet", greeting_nix));
  } catch (const sandboxd::Error& e) {
    if (e.code() != errc::nix_unavailable) throw;
    throw harness::Skip{"nix is not set up on this host (run scripts/setup-nix.sh as root): " + e.message()};
  }
  REQUIRE(installed.installed());
  CHECK_EQ(installed.exit_code, std::optional<int>(0));
  CHECK(!installed.exit_signal && !installed.exit_message);
  CHECK(installed.memory.value_or(0) > 0);
  CHECK(installed.wall_time.value_or(0s) > 0s);

  std::vector<sandboxd::Runtime> runtimes = s.sb.list_runtimes();
  REQUIRE(runtimes.size() == 1);
  CHECK_EQ(runtimes[0].name, std::string("greet"));
  CHECK(runtimes[0].id > 0);
  CHECK(runtimes[0].created_at.size() >= 20);  // 2026-11-22T06:37:21Z

  sandboxd::Box box0 = s.sb.box(0);
  sandboxd::Program greet({"/bin/sh", "-c", "printf %s \"$GREETING\""}, 2s, 8);
  greet.runtime = "greet";
  greet.stdout_file = "out";
  CHECK_EQ(box0.run(greet).exit_code, std::optional<int>(0));
  CHECK_EQ(box0.read_file("out"), std::string("hello from a runtime"));
  greet.env = std::map<std::string, std::string>{{"GREETING", "overridden"}};
  box0.run(greet);
  CHECK_EQ(box0.read_file("out"), std::string("overridden"));

  CHECK_ERROR(s.sb.install_package(package("greet", greeting_nix)), errc::runtime_exists);
  sandboxd::Package again = package("greet", greeting_nix);
  again.replace = true;
  CHECK(s.sb.install_package(again).installed());
  CHECK_EQ(s.sb.list_runtimes()[0].id, runtimes[0].id);

  sandboxd::Package no_wall = package("other", greeting_nix);
  no_wall.wall_time.reset();
  CHECK_ERROR(s.sb.install_package(no_wall), errc::missing_limit);
  CHECK_ERROR(s.sb.install_package(package(".hidden", greeting_nix)), errc::invalid_argument);

  // A shell.nix that does not evaluate: a result, not an error, and nothing stored.
  sandboxd::InstallResult broken = s.sb.install_package(package("broken", "this is not nix"));
  CHECK(!broken.installed());
  CHECK_EQ(broken.exit_status, std::optional<std::string>("RE"));
  CHECK_EQ(broken.exit_code, std::optional<int>(1));
  CHECK(broken.stderr_text.find("error") != std::string::npos);
  CHECK_EQ(names(s.sb.list_runtimes()), std::vector<std::string>{"greet"});

  s.sb.remove_runtime("greet");
  CHECK(s.sb.list_runtimes().empty());
  CHECK_ERROR(s.sb.remove_runtime("greet"), errc::no_such_runtime);
  CHECK_ERROR(box0.run(greet), errc::no_such_runtime);
}
