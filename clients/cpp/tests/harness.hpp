// A small test harness: one binary, one test per run (`client_test NAME`,
// main in harness.cpp), so that CTest reports each test, and a skip (exit
// 77, CTest's SKIP_RETURN_CODE) is never a pass. CMake finds the tests by
// their TEST(name) lines.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sandboxd/client.hpp>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace harness {

inline std::map<std::string, std::function<void()>>& tests() {
  static std::map<std::string, std::function<void()>> all;
  return all;
}

struct Register {
  Register(const char* name, std::function<void()> fn) { tests().emplace(name, std::move(fn)); }
};

// failures counts failed checks, from any thread of the test.
inline std::atomic<int> failures{0};
inline std::mutex report_mu;

// Fatal ends the test at a failed REQUIRE.
struct Fatal {};

// Skip ends the test as skipped, saying why.
struct Skip {
  std::string reason;
};

inline void fail(const char* file, int line, const std::string& what) {
  ++failures;
  std::lock_guard<std::mutex> lock(report_mu);
  std::cerr << file << ":" << line << ": FAILED: " << what << std::endl;
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
void print(std::ostream& out, const T& v) {
  if constexpr (is_optional<T>::value) {
    if (v) {
      print(out, *v);
    } else {
      out << "(absent)";
    }
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    out << "{";
    for (std::size_t i = 0; i < v.size(); ++i) {
      out << (i ? ", " : "");
      print(out, v[i]);
    }
    out << "}";
  } else if constexpr (std::is_same_v<T, sandboxd::Verdict>) {
    out << sandboxd::to_string(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out << '"' << v << '"';
  } else {
    out << v;
  }
}

template <class A, class B>
std::string show(const A& a, const B& b) {
  std::ostringstream out;
  out << "got ";
  print(out, a);
  out << ", want ";
  print(out, b);
  return out.str();
}

}  // namespace harness

#define TEST(name)                                              \
  static void test_##name();                                    \
  static harness::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(cond) ((cond) ? (void)0 : harness::fail(__FILE__, __LINE__, "CHECK(" #cond ")"))

#define CHECK_EQ(a, b)                                                                          \
  do {                                                                                          \
    const auto check_a_ = (a);                                                                  \
    const auto check_b_ = (b);                                                                  \
    if (!(check_a_ == check_b_))                                                                \
      harness::fail(__FILE__, __LINE__, #a " == " #b ": " + harness::show(check_a_, check_b_)); \
  } while (0)

#define REQUIRE(cond)                                          \
  do {                                                         \
    if (!(cond)) {                                             \
      harness::fail(__FILE__, __LINE__, "REQUIRE(" #cond ")"); \
      throw harness::Fatal{};                                  \
    }                                                          \
  } while (0)

// CHECK_ERROR checks that expr throws sandboxd::Error with the code, and
// that the error says something.
#define CHECK_ERROR(expr, want_code)                                                               \
  do {                                                                                             \
    try {                                                                                          \
      (void)(expr);                                                                                \
      harness::fail(__FILE__, __LINE__, #expr " did not throw " + std::string(want_code));         \
    } catch (const sandboxd::Error& check_e_) {                                                    \
      if (check_e_.code() != (want_code) || check_e_.message().empty())                            \
        harness::fail(__FILE__, __LINE__, #expr ": " + harness::show(check_e_.what(), want_code)); \
    }                                                                                              \
  } while (0)
