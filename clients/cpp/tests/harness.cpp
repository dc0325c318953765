#include "harness.hpp"

int main(int argc, char** argv) {
  if (argc != 2 || !harness::tests().count(argv[1])) {
    std::cerr << "usage: " << argv[0] << " TEST; tests:";
    for (const auto& [name, fn] : harness::tests()) std::cerr << " " << name;
    std::cerr << std::endl;
    return 2;
  }
  try {
    harness::tests()[argv[1]]();
  } catch (const harness::Fatal&) {
  } catch (const harness::Skip& s) {
    std::cout << "SKIP: " << s.reason << std::endl;
    return harness::failures ? 1 : 77;
  } catch (const std::exception& e) {
    harness::fail(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
  }
  if (harness::failures) {
    std::cout << argv[1] << ": " << harness::failures << " failure(s)" << std::endl;
    return 1;
  }
  std::cout << argv[1] << ": passed" << std::endl;
  return 0;
}
