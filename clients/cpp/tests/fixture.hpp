// What the tests share: a real sandboxd on a state dir of its own, and the
// probe program (testdata/progs/probe.c) to run in its boxes.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;

namespace fixture {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The binary under test and the probe, from CTest's environment.
inline std::string sandboxd_bin() { return env_or("SANDBOXD_BIN", "sandboxd"); }

inline const std::string& probe_bytes() {
  static const std::string bytes = [] {
    std::ifstream in(env_or("SANDBOXD_PROBE", "probe"), std::ios::binary);
    REQUIRE(in);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  return bytes;
}

// StateDir is a fresh --state-dir, deleted with everything in it at the end.
struct StateDir {
  StateDir() {
    char tmpl[] = "/tmp/sandboxd-cpp-client-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  ~StateDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

// args are sandboxd's flags for a state dir: its own, and the uid range of
// this test run (RLIMIT_NPROC counts a uid's processes host-wide).
inline std::vector<std::string> args(const std::string& state_dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--state-dir", state_dir, "--log-level", "warn"};
  if (const char* uids = std::getenv("SANDBOXD_TEST_UID_BASE"); uids && *uids) {
    a.push_back("--uid-base");
    a.push_back(uids);
  }
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Server is a sandboxd on a state dir of its own; the dir outlives it.
struct Server {
  explicit Server(std::vector<std::string> extra = {}, const sandboxd::Options& options = {})
      : sb(sandboxd_bin(), args(dir.path, std::move(extra)), options) {}
  StateDir dir;
  sandboxd::Sandbox sb;
};

// install_probe writes the probe into a box, executable: a binary round trip.
inline void install_probe(sandboxd::Box& box) {
  CHECK_EQ(box.write_file("probe", probe_bytes(), 0755), std::int64_t(probe_bytes().size()));
}

// probe is a run of the probe with roomy limits.
inline sandboxd::Program probe(std::vector<std::string> args) {
  args.insert(args.begin(), "./probe");
  sandboxd::Program p(std::move(args), 5s, 16);
  p.real_time_limit = 20s;
  return p;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return sandboxd::Seconds(std::chrono::steady_clock::now() - start).count();
}

}  // namespace fixture
