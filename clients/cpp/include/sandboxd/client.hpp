// sandboxd/client.hpp: a header-only C++17 client for sandboxd.
//
// A Sandbox spawns sandboxd and speaks its protocol (PROTOCOL.md at the root
// of the repository): one JSON object per line each way. Every request gets
// its own id and a reader thread matches replies to requests, so any number
// of threads may drive a Sandbox and its Boxes at once; requests on
// different boxes run in parallel in sandboxd. Error replies, and failures of
// sandboxd itself, are thrown as sandboxd::Error, which carries the code.
//
//     sandboxd::Sandbox sb("bin/sandboxd");
//     sandboxd::Box box = sb.open_box();
//     box.write_file("in.txt", "3 4\n");
//     sandboxd::Program p({"sh", "-c", "read a b; echo $((a+b))"}, 1s, 4);
//     p.stdin_file = "in.txt";
//     p.stdout_file = "out.txt";
//     sandboxd::RunResult r = box.run(p);   // r.limit_verdict == Verdict::ok
//     std::string out = box.read_file("out.txt");  // "7\n"
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

extern char** environ;

namespace sandboxd {

// Time limits and time metrics: seconds, fractions allowed (`1s`, `500ms`
// and `Seconds(0.25)` all convert).
using Seconds = std::chrono::duration<double>;

// Error codes. The first group are sandboxd's (PROTOCOL.md, "Error codes");
// the last three are the client's own (the Python client's too).
namespace errc {
inline constexpr std::string_view bad_json = "bad_json";
inline constexpr std::string_view line_too_long = "line_too_long";
inline constexpr std::string_view unknown_command = "unknown_command";
inline constexpr std::string_view unknown_field = "unknown_field";
inline constexpr std::string_view invalid_argument = "invalid_argument";
inline constexpr std::string_view missing_limit = "missing_limit";
inline constexpr std::string_view no_such_box = "no_such_box";
inline constexpr std::string_view no_such_file = "no_such_file";
inline constexpr std::string_view quota_exceeded = "quota_exceeded";
inline constexpr std::string_view too_many_boxes = "too_many_boxes";
inline constexpr std::string_view exec_failed = "exec_failed";
inline constexpr std::string_view no_such_runtime = "no_such_runtime";
inline constexpr std::string_view runtime_exists = "runtime_exists";
inline constexpr std::string_view nix_unavailable = "nix_unavailable";
inline constexpr std::string_view shutting_down = "shutting_down";
// A close_box or reset_box of the run's box, sent after it, ended it.
inline constexpr std::string_view box_closed = "box_closed";
inline constexpr std::string_view box_reset = "box_reset";
// A cancel ended the run or run group (Cancellable::cancel, Sandbox::cancel).
inline constexpr std::string_view cancelled = "cancelled";
// A cancel whose target is no request in flight: answered already, or never sent.
inline constexpr std::string_view no_such_request = "no_such_request";
// The backend cannot do it: open_box with network "loopback" under --executor=isolate.
inline constexpr std::string_view unsupported = "unsupported";
inline constexpr std::string_view internal = "internal";
// sandboxd could not be started (not found, not executable), or it exited,
// was killed or was closed before it answered.
inline constexpr std::string_view unavailable = "unavailable";
// No reply within Options::timeout.
inline constexpr std::string_view timeout = "timeout";
// A reply the client cannot read: not JSON, or not the shape PROTOCOL.md gives.
inline constexpr std::string_view bad_reply = "bad_reply";
}  // namespace errc

// An error reply of sandboxd, or a failure of the client to get one.
class Error : public std::runtime_error {
 public:
  Error(std::string_view code, std::string message)
      : std::runtime_error(std::string(code) + ": " + message), code_(code), message_(std::move(message)) {}
  const std::string& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string code_;
  std::string message_;
};

enum class Verdict {
  ok,
  signaled,
  cpu_time_limit_exceeded,
  real_time_limit_exceeded,
  idleness_time_limit_exceeded,
  memory_limit_exceeded,
};

// The protocol's name of a verdict: "OK", "Signaled", "CPUTimeLimitExceeded", ...
inline std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::ok: return "OK";
    case Verdict::signaled: return "Signaled";
    case Verdict::cpu_time_limit_exceeded: return "CPUTimeLimitExceeded";
    case Verdict::real_time_limit_exceeded: return "RealTimeLimitExceeded";
    case Verdict::idleness_time_limit_exceeded: return "IdlenessTimeLimitExceeded";
    case Verdict::memory_limit_exceeded: return "MemoryLimitExceeded";
  }
  return "?";
}

// A `run` request (and a PROGRAM of `run_group`). cpu_time_limit and
// processes_limit are required by sandboxd (missing_limit otherwise); absent
// optional fields are not sent, so sandboxd's defaults apply.
struct Program {
  Program() = default;
  Program(std::vector<std::string> argv_, Seconds cpu_time_limit_, int processes_limit_)
      : argv(std::move(argv_)), cpu_time_limit(cpu_time_limit_), processes_limit(processes_limit_) {}

  std::vector<std::string> argv;
  // Given: the environment is exactly this; absent: sandboxd's own.
  std::optional<std::map<std::string, std::string>> env;
  // Paths inside the box; absent: /dev/null.
  std::optional<std::string> stdin_file;
  std::optional<std::string> stdout_file;
  std::optional<std::string> stderr_file;
  std::optional<Seconds> cpu_time_limit;
  std::optional<Seconds> real_time_limit;
  std::optional<Seconds> idleness_time_limit;
  std::optional<std::int64_t> memory_limit;  // bytes
  std::optional<int> processes_limit;
  // Per-process bounds: stack and largest file in bytes (past file_size_limit
  // the program is Signaled -25: the judge's output limit), open files.
  std::optional<std::int64_t> stack_limit;
  std::optional<std::int64_t> file_size_limit;
  std::optional<std::int64_t> open_files_limit;
  // Box::run sets it to its box; absent: box 0.
  std::optional<int> box;
  std::optional<std::string> runtime;
};

struct RunResult {
  Verdict limit_verdict = Verdict::ok;
  // OK: 0 to 255; Signaled: minus the signal number; absent past a limit.
  std::optional<int> exit_code;
  Seconds real_time{0};
  Seconds cpu_time{0};
  Seconds idleness_time{0};
  std::int64_t memory = 0;  // peak bytes
};

// One pipe of a run group: from an fd of one program to an fd of another
// (programs by their index in the group). Pipe{{0, 1}, {1, 0}} joins
// program 0's stdout to program 1's stdin.
struct Pipe {
  struct End {
    int program = 0;
    int fd = 0;
  };
  End from;
  End to;
};

struct GroupResult {
  std::vector<RunResult> results;  // one per program, in the programs' order
  std::vector<int> exit_order;     // program indices in the order they ended
};

struct BoxOptions {
  std::optional<std::int64_t> quota_space;       // bytes (sandboxd's default: 512 MiB)
  std::optional<std::int64_t> quota_inodes;      // files (default: 16384)
  std::optional<std::vector<std::string>> dirs;  // host dirs shown read-only, replacing the default
  // "loopback": the box's own loopback is up (127.0.0.1 and ::1 between its
  // processes, nothing else); absent: no network.
  std::optional<std::string> network;
};

enum class FileType { file, dir, symlink, other };

struct FileEntry {
  std::string name;
  FileType type = FileType::other;
  std::int64_t size = 0;
  int mode = 0;  // permission bits
};

// Part of a file, from read_chunk.
struct FileChunk {
  std::string content;     // bytes
  std::int64_t size = 0;   // the whole file's size
  bool truncated = false;  // bytes remain past what was read
};

// An install_package request, in the protocol's (the seed's) units:
// seconds, and kilobytes for memory and max_file_size. wall_time, cpu_time,
// memory and max_number_of_processes are required (missing_limit otherwise).
struct Package {
  std::string name;
  std::string nix_shell;  // the text of a shell.nix
  std::optional<Seconds> wall_time;
  std::optional<Seconds> cpu_time;
  std::optional<Seconds> extra_time;
  std::optional<std::int64_t> memory;  // kilobytes
  std::optional<int> max_number_of_processes;
  std::optional<int> max_open_files;
  std::optional<std::int64_t> max_file_size;  // kilobytes
  bool replace = false;
};

// The reply to install_package, its nine fields. A failed install is a
// result (exit_status "RE", "TO" or "SG"), not an Error.
struct InstallResult {
  std::optional<std::int64_t> memory;  // peak kilobytes
  std::optional<int> exit_code;
  std::optional<int> exit_signal;
  std::optional<std::string> exit_message;
  std::optional<std::string> exit_status;
  std::string stdout_text;  // nix-shell's stdout, its last 256 KiB
  std::string stderr_text;
  std::optional<Seconds> cpu_time;
  std::optional<Seconds> wall_time;
  bool installed() const { return !exit_status.has_value(); }
};

struct Runtime {
  std::int64_t id = 0;
  std::string name;
  std::string created_at;  // UTC, RFC 3339
};

struct Version {
  std::string version;
  int protocol = 0;
};

// The reply to stats: what a metrics exporter reads (PROTOCOL.md, "stats").
// Counts are since sandboxd began serving.
struct Stats {
  Seconds uptime{0};
  std::string executor;  // "native" or "isolate"
  std::int64_t boxes_open = 0;
  std::int64_t runs_running = 0;  // runs and run groups holding a --parallel slot now
  std::int64_t runs_queued = 0;
  std::int64_t parallel = 0;  // the --parallel slots
  // Results by limit_verdict ("OK", "Signaled", ...; every verdict is a key),
  // and run and run_group errors by code ("exec_failed", "cancelled", ...).
  std::map<std::string, std::int64_t> runs;
  std::map<std::string, std::int64_t> run_errors;
  struct Cgroup {
    std::string mode;                 // "v1", "v2" or "none"
    std::vector<std::string> groups;  // the instance's own groups on the host
  } cgroup;
  struct Cpus {
    std::string list;  // the CPUs of --cpus, as a CPU list ("2-7")
    std::int64_t in_use = 0;
  };
  std::optional<Cpus> cpus;  // with --cpus only
};

struct Options {
  // A synchronous call that has no reply within this time throws
  // errc::timeout (its late reply is dropped). Absent: wait as long as it
  // takes. Asynchronous calls return futures: wait on them as you like.
  std::optional<Seconds> timeout;
  // How long closing waits for sandboxd to finish what is in flight and
  // exit before it kills sandboxd.
  Seconds exit_timeout{60};
  // Copy what sandboxd logs on its stderr to this process's stderr. Either
  // way the start and end of it go into the message of errc::unavailable.
  bool forward_stderr = true;
};

namespace detail {

using json = nlohmann::json;

inline std::string base64_encode(std::string_view in) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out((in.size() + 2) / 3 * 4, '=');
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  char* o = out.data();
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3, o += 4) {
    std::uint32_t n = std::uint32_t(p[i]) << 16 | std::uint32_t(p[i + 1]) << 8 | p[i + 2];
    o[0] = digits[n >> 18 & 63];
    o[1] = digits[n >> 12 & 63];
    o[2] = digits[n >> 6 & 63];
    o[3] = digits[n & 63];
  }
  if (std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t(p[i]) << 16 | (rest == 2 ? std::uint32_t(p[i + 1]) << 8 : 0);
    o[0] = digits[n >> 18 & 63];
    o[1] = digits[n >> 12 & 63];
    if (rest == 2) o[2] = digits[n >> 6 & 63];
  }
  return out;
}

inline std::string base64_decode(std::string_view in) {
  static const auto values = [] {
    std::array<std::int8_t, 256> v{};
    v.fill(-1);
    const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) v[std::uint8_t(digits[i])] = std::int8_t(i);
    return v;
  }();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out(in.size() * 3 / 4, '\0');
  char* o = out.data();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = values[std::uint8_t(c)];
    if (v < 0) throw Error(errc::bad_reply, "content is not base64");
    acc = acc << 6 | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = char(acc >> bits & 0xff);
    }
  }
  out.resize(std::size_t(o - out.data()));
  return out;
}

inline Verdict parse_verdict(const std::string& s) {
  for (Verdict v : {Verdict::ok, Verdict::signaled, Verdict::cpu_time_limit_exceeded, Verdict::real_time_limit_exceeded,
                    Verdict::idleness_time_limit_exceeded, Verdict::memory_limit_exceeded}) {
    if (to_string(v) == s) return v;
  }
  throw Error(errc::bad_reply, "unknown limit_verdict \"" + s + "\"");
}

// optional_field is j[key] when present and not null.
template <class T>
std::optional<T> optional_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<T>();
}

inline std::optional<Seconds> optional_seconds(const json& j, const char* key) {
  if (auto s = optional_field<double>(j, key)) return Seconds(*s);
  return std::nullopt;
}

inline json program_json(const Program& p) {
  json j = json::object();
  j["argv"] = p.argv;
  if (p.env) j["env"] = *p.env;
  if (p.stdin_file) j["stdin"] = *p.stdin_file;
  if (p.stdout_file) j["stdout"] = *p.stdout_file;
  if (p.stderr_file) j["stderr"] = *p.stderr_file;
  if (p.cpu_time_limit) j["cpu_time_limit"] = p.cpu_time_limit->count();
  if (p.real_time_limit) j["real_time_limit"] = p.real_time_limit->count();
  if (p.idleness_time_limit) j["idleness_time_limit"] = p.idleness_time_limit->count();
  if (p.memory_limit) j["memory_limit"] = *p.memory_limit;
  if (p.processes_limit) j["processes_limit"] = *p.processes_limit;
  if (p.stack_limit) j["stack_limit"] = *p.stack_limit;
  if (p.file_size_limit) j["file_size_limit"] = *p.file_size_limit;
  if (p.open_files_limit) j["open_files_limit"] = *p.open_files_limit;
  if (p.box) j["box"] = *p.box;
  if (p.runtime) j["runtime"] = *p.runtime;
  return j;
}

inline json run_request(const Program& p) {
  json j = program_json(p);
  j["command"] = "run";
  return j;
}

inline json run_group_request(const std::vector<Program>& programs, const std::vector<Pipe>& pipes,
                              std::optional<Seconds> idleness_time_limit) {
  json j = {{"command", "run_group"}, {"programs", json::array()}, {"pipes", json::array()}};
  for (const Program& p : programs) j["programs"].push_back(program_json(p));
  for (const Pipe& p : pipes) {
    j["pipes"].push_back({{"from", {{"program", p.from.program}, {"fd", p.from.fd}}},
                          {"to", {{"program", p.to.program}, {"fd", p.to.fd}}}});
  }
  if (idleness_time_limit) j["idleness_time_limit"] = idleness_time_limit->count();
  return j;
}

inline RunResult parse_run(const json& j) {
  RunResult r;
  r.limit_verdict = parse_verdict(j.at("limit_verdict").get<std::string>());
  r.exit_code = optional_field<int>(j, "exit_code");
  r.real_time = Seconds(j.at("real_time").get<double>());
  r.cpu_time = Seconds(j.at("cpu_time").get<double>());
  r.idleness_time = Seconds(j.at("idleness_time").get<double>());
  r.memory = j.at("memory").get<std::int64_t>();
  return r;
}

inline GroupResult parse_group(const json& j) {
  GroupResult g;
  for (const json& result : j.at("results")) g.results.push_back(parse_run(result));
  g.exit_order = j.at("exit_order").get<std::vector<int>>();
  return g;
}

inline Stats parse_stats(const json& j) {
  Stats s;
  s.uptime = Seconds(j.at("uptime").get<double>());
  s.executor = j.at("executor").get<std::string>();
  s.boxes_open = j.at("boxes_open").get<std::int64_t>();
  s.runs_running = j.at("runs_running").get<std::int64_t>();
  s.runs_queued = j.at("runs_queued").get<std::int64_t>();
  s.parallel = j.at("parallel").get<std::int64_t>();
  s.runs = j.at("runs").get<std::map<std::string, std::int64_t>>();
  s.run_errors = j.at("run_errors").get<std::map<std::string, std::int64_t>>();
  s.cgroup.mode = j.at("cgroup").at("mode").get<std::string>();
  s.cgroup.groups = j.at("cgroup").at("groups").get<std::vector<std::string>>();
  if (auto cpus = j.find("cpus"); cpus != j.end() && !cpus->is_null()) {
    s.cpus = Stats::Cpus{cpus->at("list").get<std::string>(), cpus->at("in_use").get<std::int64_t>()};
  }
  return s;
}

inline FileType parse_file_type(const std::string& s) {
  if (s == "file") return FileType::file;
  if (s == "dir") return FileType::dir;
  if (s == "symlink") return FileType::symlink;
  return FileType::other;
}

// An in-flight request: completed once, by the reader thread, with its
// reply or with the error that ended the connection.
struct Pending {
  virtual ~Pending() = default;
  virtual void reply(json&& reply) noexcept = 0;
  virtual void fail(std::exception_ptr error) noexcept = 0;
};

template <class T, class Convert>
struct TypedPending final : Pending {
  TypedPending(std::string what_, Convert convert_) : what(std::move(what_)), convert(std::move(convert_)) {}
  void reply(json&& r) noexcept override {
    try {
      if (auto e = r.find("error"); e != r.end()) {
        throw Error(e->at("code").get<std::string>(), e->at("message").get<std::string>());
      }
      if constexpr (std::is_void_v<T>) {
        convert(r);
        promise.set_value();
      } else {
        promise.set_value(convert(r));
      }
    } catch (const json::exception& e) {
      promise.set_exception(std::make_exception_ptr(Error(errc::bad_reply, "reply to " + what + ": " + e.what())));
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
  }
  void fail(std::exception_ptr error) noexcept override { promise.set_exception(std::move(error)); }

  std::string what;  // the command, for messages
  Convert convert;
  std::promise<T> promise;
};

// The longest request line sandboxd accepts: its --max-line, in any of the
// forms Go's flag package reads (-max-line N, --max-line=N, ...), or the default.
inline std::size_t max_line_of(const std::vector<std::string>& args) {
  std::size_t max = std::size_t(16) << 20;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "--") break;  // flags end there
    if (a.size() < 2 || a[0] != '-') continue;
    a.remove_prefix(a[1] == '-' ? 2 : 1);
    std::string value;
    if (a == "max-line" && i + 1 < args.size()) {
      value = args[++i];
    } else if (a.substr(0, 9) == "max-line=") {
      value = std::string(a.substr(9));
    } else {
      continue;
    }
    char* end = nullptr;
    unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (end != value.c_str() && *end == '\0' && n > 0) max = std::size_t(n);
  }
  return max;
}

inline void close_fds(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

// make_pipe makes a pipe whose ends are close-on-exec and above the standard
// descriptors, so that dup2 onto 0, 1, 2 in the child always clears
// close-on-exec. It returns false, with errno set, if it could not.
inline bool make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  for (int i = 0; i < 2; ++i) {
    if (fds[i] > 2) continue;
    int moved = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    if (moved < 0) {
      int saved = errno;
      close_fds({fds[0], fds[1]});
      fds[0] = fds[1] = -1;
      errno = saved;
      return false;
    }
    ::close(fds[i]);
    fds[i] = moved;
  }
  return true;
}

// Connection is sandboxd's process, its pipes and the requests in flight.
// Sandbox and its Boxes share it.
class Connection {
 public:
  Connection(const std::string& binary, const std::vector<std::string>& args, const Options& options)
      : options_(options), max_line_(max_line_of(args)) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (!make_pipe(in) || !make_pipe(out) || !make_pipe(err)) {
      int saved = errno;
      close_fds({in[0], in[1], out[0], out[1]});
      throw Error(errc::unavailable, std::string("cannot make pipes for sandboxd: ") + std::strerror(saved));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    // sandboxd's own signal handling must work whatever this process blocks or ignores.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, binary.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close_fds({in[0], out[1], err[1]});
    if (rc != 0) {
      close_fds({in[1], out[0], err[0]});
      throw Error(errc::unavailable, "cannot start sandboxd \"" + binary + "\": " + std::strerror(rc));
    }
    stdin_ = in[1];
    stdout_ = out[0];
    stderr_ = err[0];
    // The reader blocks every signal: they are the judge's threads' to take
    // (and a SIGPIPE from forwarding stderr must not end the judge).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      reader_ = std::thread([this] { read_loop(); });
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      close_fds({stdin_, stdout_, stderr_});
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(options_.exit_timeout); }

  pid_t pid() const { return pid_; }
  const Options& options() const { return options_; }

  // submit sends a request and returns the future of its converted reply.
  // Every failure, of the request or of sandboxd, arrives through the future.
  template <class T, class Convert>
  std::pair<std::uint64_t, std::future<T>> submit(json request, Convert convert) {
    std::string what = request.value("command", std::string("request"));
    auto pending = std::make_unique<TypedPending<T, Convert>>(what, std::move(convert));
    std::future<T> future = pending->promise.get_future();
    std::uint64_t id = next_id_++;
    request["id"] = id;
    std::string line;
    try {
      line = request.dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception& e) {
      pending->fail(std::make_exception_ptr(Error(errc::invalid_argument, what + ": " + e.what())));
      return {id, std::move(future)};
    }
    if (line.size() > max_line_) {
      pending->fail(std::make_exception_ptr(
          Error(errc::line_too_long, what + ": the request line of " + std::to_string(line.size()) +
                                         " bytes is longer than sandboxd's --max-line of " + std::to_string(max_line_) +
                                         " bytes; it was not sent (copy large files through the box's path)")));
      return {id, std::move(future)};
    }
    line += '\n';
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) {
        pending->fail(exit_error_);
        return {id, std::move(future)};
      }
      pending_.emplace(id, std::move(pending));
    }
    // On a failed write the request stays pending: the reader fails it with
    // the reason sandboxd is gone once it sees sandboxd's end.
    write_line(line);
    return {id, std::move(future)};
  }

  // call is submit, then a wait bounded by Options::timeout.
  template <class T, class Convert>
  T call(json request, Convert convert) {
    std::string what = request.value("command", std::string("request"));
    auto [id, future] = submit<T>(std::move(request), std::move(convert));
    if (options_.timeout && future.wait_for(*options_.timeout) == std::future_status::timeout && abandon(id)) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%g", options_.timeout->count());
      throw Error(errc::timeout, what + ": no reply within " + seconds + " s");
    }
    return future.get();
  }

  // close ends sandboxd's input, waits up to grace for it to exit (it
  // answers what is in flight first), kills it after that, and returns its
  // exit status: the exit code, or minus the signal that killed it.
  int close(Seconds grace) {
    close_input();
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, grace, [this] { return finished_; }) && !reaped_) ::kill(pid_, SIGKILL);
    }
    {
      std::lock_guard<std::mutex> lock(join_mu_);
      if (reader_.joinable()) reader_.join();
    }
    std::lock_guard<std::mutex> lock(mu_);
    return exit_status_;
  }

 private:
  // abandon forgets a request that timed out; false if it was answered meanwhile.
  bool abandon(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.erase(id) > 0;
  }

  void close_input() {
    std::lock_guard<std::mutex> lock(write_mu_);
    closed_by_us_ = true;
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }

  // write_line writes a whole line, with SIGPIPE blocked in this thread
  // (a dead sandboxd must not kill the judge) and any SIGPIPE it raised consumed.
  void write_line(const std::string& line) {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (stdin_ < 0) return;
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    std::size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(stdin_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        if (errno == EPIPE && !was_pending) {
          timespec zero{};
          while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
          }
        }
        ::close(stdin_);
        stdin_ = -1;
        break;
      }
      done += std::size_t(n);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  void read_loop() {
    std::string buf;
    std::vector<char> chunk(1 << 18);
    pollfd fds[2] = {{stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};
    // Until stdout ends; then stderr's last words, for a little while.
    auto stderr_deadline = std::chrono::steady_clock::time_point::max();
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
      int wait_ms = -1;
      if (fds[0].fd < 0) {
        auto left = stderr_deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) break;
        wait_ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(left).count()) + 1;
      }
      int n = ::poll(fds, 2, wait_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t got = ::read(fds[i].fd, chunk.data(), chunk.size());
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          fds[i].fd = -1;
          if (i == 0) stderr_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
          continue;
        }
        if (i == 0) {
          std::size_t scanned = buf.size();
          buf.append(chunk.data(), std::size_t(got));
          take_lines(buf, scanned);
        } else {
          take_stderr(std::string_view(chunk.data(), std::size_t(got)));
        }
      }
    }
    ::close(stdout_);
    ::close(stderr_);
    finish();
  }

  // take_lines dispatches every complete line of buf (no newline before scanned).
  void take_lines(std::string& buf, std::size_t scanned) {
    std::size_t start = 0;
    for (std::size_t nl = buf.find('\n', scanned); nl != std::string::npos; nl = buf.find('\n', start)) {
      std::string_view line(buf.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") != std::string_view::npos) dispatch(line);
    }
    buf.erase(0, start);
  }

  void dispatch(std::string_view line) {
    json reply = json::parse(line, nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
      fail_all(Error(errc::bad_reply,
                     "sandboxd wrote a line that is not a JSON object: " + std::string(line.substr(0, 200))));
      return;
    }
    auto id = reply.find("id");
    if (id == reply.end() || !id->is_number_unsigned()) {
      // The client sends well-formed lines with integer ids, so this answers
      // a line sandboxd could not read, and no request can be told from it.
      std::string message = "a reply without an id: " + std::string(line.substr(0, 300));
      auto e = reply.find("error");
      if (e != reply.end() && e->is_object()) {
        fail_all(Error(e->value("code", std::string(errc::bad_reply)),
                       e->value("message", std::string()) + " (" + message + ")"));
      } else {
        fail_all(Error(errc::bad_reply, message));
      }
      return;
    }
    std::unique_ptr<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(id->get<std::uint64_t>());
      if (it == pending_.end()) return;  // abandoned after a timeout
      pending = std::move(it->second);
      pending_.erase(it);
    }
    pending->reply(std::move(reply));
  }

  void fail_all(const Error& error) {
    std::unordered_map<std::uint64_t, std::unique_ptr<Pending>> failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed.swap(pending_);
    }
    for (auto& [id, pending] : failed) pending->fail(std::make_exception_ptr(error));
  }

  void take_stderr(std::string_view data) {
    if (options_.forward_stderr) {
      for (std::size_t done = 0; done < data.size();) {
        ssize_t n = ::write(2, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += std::size_t(n);
      }
    }
    constexpr std::size_t keep = 4096;
    if (stderr_head_.size() < keep) stderr_head_.append(data.substr(0, keep - stderr_head_.size()));
    stderr_tail_.append(data);
    if (stderr_tail_.size() > 2 * keep) stderr_tail_.erase(0, stderr_tail_.size() - keep);
  }

  // stderr_summary is the first and the last line sandboxd wrote on stderr.
  std::string stderr_summary() const {
    auto first_line = [](std::string_view s) {
      s.remove_prefix(std::min(s.size(), s.find_first_not_of("\r\n")));
      return s.substr(0, std::min(s.find('\n'), std::size_t(500)));
    };
    auto last_line = [](std::string_view s) {
      s.remove_suffix(s.size() - std::min(s.size(), s.find_last_not_of("\r\n") + 1));
      std::size_t nl = s.rfind('\n');
      s = nl == std::string_view::npos ? s : s.substr(nl + 1);
      return s.substr(0, 500);
    };
    std::string_view first = first_line(stderr_head_), last = last_line(stderr_tail_);
    if (first.empty()) return "";
    std::string out = "; its stderr: " + std::string(first);
    if (last != first) out += " [...] " + std::string(last);
    return out;
  }

  // finish reaps sandboxd and fails whatever is still in flight.
  void finish() {
    siginfo_t info{};
    while (::waitid(P_PID, id_t(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int status = 0;
      pid_t got = ::waitpid(pid_, &status, 0);
      reaped_ = true;
      if (got != pid_) {
        reason = "sandboxd ended (its exit status was taken by someone else)";
      } else if (WIFSIGNALED(status)) {
        exit_status_ = -WTERMSIG(status);
        reason = "sandboxd was killed by signal " + std::to_string(WTERMSIG(status));
      } else {
        exit_status_ = WEXITSTATUS(status);
        reason = closed_by_us_ && exit_status_ == 0 ? "sandboxd was closed"
                                                    : "sandboxd exited with status " + std::to_string(exit_status_);
      }
      reason += stderr_summary();
    }
    Error error(errc::unavailable, reason);
    std::unordered_map<std::uint64_t, std::unique_ptr<Pending>> failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      exit_error_ = std::make_exception_ptr(error);
      finished_ = true;
      failed.swap(pending_);
    }
    cv_.notify_all();
    for (auto& [id, pending] : failed) pending->fail(std::make_exception_ptr(error));
  }

  const Options options_;
  const std::size_t max_line_;
  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::atomic<std::uint64_t> next_id_{1};

  std::mutex join_mu_;   // reader_, for close() from several threads
  std::mutex write_mu_;  // stdin_
  std::atomic<bool> closed_by_us_{false};

  std::mutex mu_;  // everything below
  std::condition_variable cv_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Pending>> pending_;
  bool reaped_ = false;
  bool finished_ = false;
  int exit_status_ = 0;
  std::exception_ptr exit_error_;
  std::string stderr_head_, stderr_tail_;  // written by the reader only

  std::thread reader_;
};

inline void ignore_reply(const json&) {}

inline json cancel_request(std::uint64_t target) { return {{"command", "cancel"}, {"target", target}}; }

}  // namespace detail

class Sandbox;

// A request in flight that can be ended before its limits end it: the
// std::future of its result (get, wait_for, ...), with its request id. The
// *_async calls return one.
//
// cancel() asks sandboxd to end it (`cancel`: a run queued never starts, one
// running is killed) and returns once it is ended: get() then throws
// Error(errc::cancelled), and the box is usable again. A request answered
// already keeps its own result, and cancel() throws
// Error(errc::no_such_request). Any thread may call cancel() while another
// waits on the future.
template <class T>
class Cancellable : public std::future<T> {
 public:
  Cancellable() noexcept = default;

  std::uint64_t id() const noexcept { return id_; }

  void cancel() {
    if (!conn_) throw std::future_error(std::future_errc::no_state);  // as get() on an empty future
    conn_->call<void>(detail::cancel_request(id_), detail::ignore_reply);
  }

 private:
  friend class Box;
  friend class Sandbox;
  Cancellable(std::shared_ptr<detail::Connection> conn, std::pair<std::uint64_t, std::future<T>> sent)
      : std::future<T>(std::move(sent.second)), conn_(std::move(conn)), id_(sent.first) {}

  std::shared_ptr<detail::Connection> conn_;
  std::uint64_t id_ = 0;
};

// A box: an isolated place to run programs, with its own /space. A Box from
// Sandbox::open_box owns its box and closes it when destroyed; one from
// Sandbox::box(id) is a handle on a box it does not own (box 0, say).
// Calls on a Box may come from several threads.
class Box {
 public:
  Box(Box&& other) noexcept
      : conn_(std::move(other.conn_)), id_(other.id_), owned_(std::exchange(other.owned_, false)) {}
  Box& operator=(Box&& other) noexcept {
    if (this != &other) {
      close_quietly();
      conn_ = std::move(other.conn_);
      id_ = other.id_;
      owned_ = std::exchange(other.owned_, false);
    }
    return *this;
  }
  Box(const Box&) = delete;
  Box& operator=(const Box&) = delete;
  ~Box() { close_quietly(); }

  int id() const noexcept { return id_; }

  // run runs a program in this box (whatever program.box says).
  RunResult run(Program program) {
    program.box = id_;
    return conn_->call<RunResult>(detail::run_request(program), detail::parse_run);
  }
  Cancellable<RunResult> run_async(Program program) {
    program.box = id_;
    return {conn_, conn_->submit<RunResult>(detail::run_request(program), detail::parse_run)};
  }

  // write_file writes bytes (any, binary too) to a path in /space, creating
  // parent directories; mode is the permission bits (sandboxd's default 0644).
  // It returns the size written.
  std::int64_t write_file(const std::string& path, std::string_view content, std::optional<int> mode = std::nullopt) {
    detail::json req = request("write_file");
    req["path"] = path;
    req["content_base64"] = detail::base64_encode(content);
    if (mode) req["mode"] = *mode;
    return conn_->call<std::int64_t>(std::move(req),
                                     [](const detail::json& r) { return r.at("size").get<std::int64_t>(); });
  }

  // read_file reads a whole file: its bytes.
  std::string read_file(const std::string& path) {
    constexpr std::int64_t most = 8 << 20;  // the most one read_file reply carries
    std::string content;
    for (;;) {
      FileChunk chunk = read_chunk(path, std::int64_t(content.size()), most);
      content += chunk.content;
      if (!chunk.truncated || chunk.content.empty()) return content;
    }
  }

  // read_chunk reads at most max_bytes (at most 8 MiB) from offset.
  FileChunk read_chunk(const std::string& path, std::int64_t offset, std::int64_t max_bytes) {
    detail::json req = request("read_file");
    req["path"] = path;
    req["offset"] = offset;
    req["max_bytes"] = max_bytes;
    req["encoding"] = "base64";
    return conn_->call<FileChunk>(std::move(req), [](const detail::json& r) {
      return FileChunk{detail::base64_decode(r.at("content").get<std::string>()), r.at("size").get<std::int64_t>(),
                       r.at("truncated").get<bool>()};
    });
  }

  // list_files lists a directory of the box, by name; empty: /space.
  std::vector<FileEntry> list_files(const std::string& path = "") {
    detail::json req = request("list_files");
    if (!path.empty()) req["path"] = path;
    return conn_->call<std::vector<FileEntry>>(std::move(req), [](const detail::json& r) {
      std::vector<FileEntry> entries;
      for (const detail::json& e : r.at("entries")) {
        entries.push_back(FileEntry{e.at("name").get<std::string>(),
                                    detail::parse_file_type(e.at("type").get<std::string>()),
                                    e.at("size").get<std::int64_t>(), e.at("mode").get<int>()});
      }
      return entries;
    });
  }

  // remove_file removes a file, or a directory with everything in it.
  void remove_file(const std::string& path) {
    detail::json req = request("remove_file");
    req["path"] = path;
    conn_->call<void>(std::move(req), detail::ignore_reply);
  }

  // reset empties /space and /tmp.
  void reset() { conn_->call<void>(request("reset_box"), detail::ignore_reply); }

  // path is where the box's /space is on the host (box_path).
  std::string path() {
    return conn_->call<std::string>(request("box_path"),
                                    [](const detail::json& r) { return r.at("path").get<std::string>(); });
  }

  // close kills every process of the box and deletes its files, after the
  // box's requests sent before it (sandboxd orders them per box). A Box from
  // open_box does it when destroyed too (then ignoring errors).
  void close() {
    owned_ = false;
    conn_->call<void>(request("close_box"), detail::ignore_reply);
  }

 private:
  friend class Sandbox;
  Box(std::shared_ptr<detail::Connection> conn, int id, bool owned) : conn_(std::move(conn)), id_(id), owned_(owned) {}

  detail::json request(const char* command) const { return {{"command", command}, {"box", id_}}; }

  void close_quietly() noexcept {
    if (!owned_ || !conn_) return;
    try {
      close();
    } catch (...) {  // a destructor must not throw; sandboxd deletes the box at its end anyway
    }
  }

  std::shared_ptr<detail::Connection> conn_;
  int id_ = 0;
  bool owned_ = false;
};

// Sandbox spawns sandboxd and talks to it. Destroying it (or close()) ends
// sandboxd's input: sandboxd answers what is in flight, closes every box and
// exits. Every method may be called from several threads at once.
class Sandbox {
 public:
  // binary: a path, or a name looked up in PATH. args: sandboxd's flags
  // (--state-dir, --uid-base, --parallel, ...). The environment of sandboxd
  // is this process's: runs without env inherit it.
  explicit Sandbox(const std::string& binary = "sandboxd", const std::vector<std::string>& args = {},
                   const Options& options = {})
      : conn_(std::make_shared<detail::Connection>(binary, args, options)) {}

  Sandbox(Sandbox&&) noexcept = default;
  Sandbox& operator=(Sandbox&& other) noexcept {
    if (this != &other) {
      close_quietly();
      conn_ = std::move(other.conn_);
    }
    return *this;
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;
  ~Sandbox() { close_quietly(); }

  // pid is sandboxd's process id.
  pid_t pid() const { return conn_->pid(); }

  // run runs a program in program.box (default box 0).
  RunResult run(const Program& program) {
    return conn_->call<RunResult>(detail::run_request(program), detail::parse_run);
  }
  Cancellable<RunResult> run_async(const Program& program) {
    return {conn_, conn_->submit<RunResult>(detail::run_request(program), detail::parse_run)};
  }

  // run_group runs programs at once, each in its own box (Program::box),
  // joined by pipes; a group idleness limit ends deadlocks.
  GroupResult run_group(const std::vector<Program>& programs, const std::vector<Pipe>& pipes = {},
                        std::optional<Seconds> idleness_time_limit = std::nullopt) {
    return conn_->call<GroupResult>(detail::run_group_request(programs, pipes, idleness_time_limit),
                                    detail::parse_group);
  }
  Cancellable<GroupResult> run_group_async(const std::vector<Program>& programs, const std::vector<Pipe>& pipes = {},
                                           std::optional<Seconds> idleness_time_limit = std::nullopt) {
    return {conn_, conn_->submit<GroupResult>(detail::run_group_request(programs, pipes, idleness_time_limit),
                                              detail::parse_group)};
  }

  // cancel ends the run or run group whose request id is target
  // (Cancellable::id), queued or running: see Cancellable::cancel.
  void cancel(std::uint64_t target) { conn_->call<void>(detail::cancel_request(target), detail::ignore_reply); }

  // open_box opens a new box, which the returned Box owns.
  Box open_box(const BoxOptions& options = {}) {
    detail::json req = {{"command", "open_box"}};
    if (options.quota_space) req["quota_space"] = *options.quota_space;
    if (options.quota_inodes) req["quota_inodes"] = *options.quota_inodes;
    if (options.dirs) req["dirs"] = *options.dirs;
    if (options.network) req["network"] = *options.network;
    int id = conn_->call<int>(std::move(req), [](const detail::json& r) { return r.at("box").get<int>(); });
    return Box(conn_, id, true);
  }

  // box is a handle on an open box that it does not own: box(0) is the box
  // that exists from the start.
  Box box(int id) { return Box(conn_, id, false); }

  InstallResult install_package(const Package& package) {
    detail::json req = {{"command", "install_package"}, {"name", package.name}, {"nix_shell", package.nix_shell}};
    if (package.wall_time) req["wall_time"] = package.wall_time->count();
    if (package.cpu_time) req["cpu_time"] = package.cpu_time->count();
    if (package.extra_time) req["extra_time"] = package.extra_time->count();
    if (package.memory) req["memory"] = *package.memory;
    if (package.max_number_of_processes) req["max_number_of_processes"] = *package.max_number_of_processes;
    if (package.max_open_files) req["max_open_files"] = *package.max_open_files;
    if (package.max_file_size) req["max_file_size"] = *package.max_file_size;
    if (package.replace) req["replace"] = true;
    return conn_->call<InstallResult>(std::move(req), [](const detail::json& r) {
      InstallResult i;
      i.memory = detail::optional_field<std::int64_t>(r, "memory");
      i.exit_code = detail::optional_field<int>(r, "exit_code");
      i.exit_signal = detail::optional_field<int>(r, "exit_signal");
      i.exit_message = detail::optional_field<std::string>(r, "exit_message");
      i.exit_status = detail::optional_field<std::string>(r, "exit_status");
      i.stdout_text = r.at("stdout").get<std::string>();
      i.stderr_text = r.at("stderr").get<std::string>();
      i.cpu_time = detail::optional_seconds(r, "cpu_time");
      i.wall_time = detail::optional_seconds(r, "wall_time");
      return i;
    });
  }

  std::vector<Runtime> list_runtimes() {
    return conn_->call<std::vector<Runtime>>({{"command", "list_runtimes"}}, [](const detail::json& r) {
      std::vector<Runtime> runtimes;
      for (const detail::json& rt : r.at("runtimes")) {
        runtimes.push_back(Runtime{rt.at("id").get<std::int64_t>(), rt.at("name").get<std::string>(),
                                   rt.at("created_at").get<std::string>()});
      }
      return runtimes;
    });
  }

  void remove_runtime(const std::string& name) {
    conn_->call<void>({{"command", "remove_runtime"}, {"name", name}}, detail::ignore_reply);
  }

  // stats is what a metrics exporter reads; it is answered at once, however
  // busy the boxes are.
  Stats stats() { return conn_->call<Stats>({{"command", "stats"}}, detail::parse_stats); }

  Version version() {
    return conn_->call<Version>({{"command", "version"}}, [](const detail::json& r) {
      return Version{r.at("version").get<std::string>(), r.at("protocol").get<int>()};
    });
  }

  // call sends any request (its id is the client's) and returns the reply
  // without its id: for commands this client does not know yet.
  nlohmann::json call(nlohmann::json request) { return conn_->call<nlohmann::json>(std::move(request), strip_id); }
  Cancellable<nlohmann::json> call_async(nlohmann::json request) {
    return {conn_, conn_->submit<nlohmann::json>(std::move(request), strip_id)};
  }

  // close ends sandboxd's input and waits for it to exit (killing it after
  // Options::exit_timeout); it returns the exit code, or minus the signal
  // that killed sandboxd. Calls made after it throw errc::unavailable.
  int close() { return conn_->close(conn_->options().exit_timeout); }

 private:
  static nlohmann::json strip_id(const nlohmann::json& reply) {
    nlohmann::json r = reply;
    r.erase("id");
    return r;
  }

  void close_quietly() noexcept {
    if (!conn_) return;
    try {
      close();
    } catch (...) {
    }
  }

  std::shared_ptr<detail::Connection> conn_;
};

}  // namespace sandboxd
