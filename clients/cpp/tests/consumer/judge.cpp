// A tiny judge: one test of an a+b "solution" in a box of its own.
// Usage: judge SANDBOXD [SANDBOXD-FLAGS...]
#include <iostream>
#include <sandboxd/client.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " SANDBOXD [SANDBOXD-FLAGS...]\n";
    return 2;
  }
  try {
    sandboxd::Sandbox sb(argv[1], std::vector<std::string>(argv + 2, argv + argc));
    sandboxd::Box box = sb.open_box();
    box.write_file("solution.sh", "read a b; echo $((a + b))\n");
    box.write_file("input.txt", "3 4\n");
    sandboxd::Program run({"/bin/sh", "solution.sh"}, 1s, 4);
    run.real_time_limit = 2s;
    run.stdin_file = "input.txt";
    run.stdout_file = "output.txt";
    sandboxd::RunResult r = box.run(run);
    std::string output = box.read_file("output.txt");
    std::cout << sandboxd::to_string(r.limit_verdict) << " in " << r.cpu_time.count() << " s: " << output;
    return r.limit_verdict == sandboxd::Verdict::ok && output == "7\n" ? 0 : 1;
  } catch (const sandboxd::Error& e) {
    std::cerr << "judge: " << e.code() << ": " << e.message() << "\n";
    return 1;
  }
}
