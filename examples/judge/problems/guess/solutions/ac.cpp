// Binary search, flushing each guess (std::endl) so that the interactor sees it.
#include <iostream>
#include <string>

int main() {
    long long lo = 1, hi;
    std::cin >> hi;
    while (lo <= hi) {
        long long mid = (lo + hi) / 2;
        std::cout << "? " << mid << std::endl;
        std::string answer;
        std::cin >> answer;
        if (answer == "=") return 0;
        if (answer == "<") hi = mid - 1; else lo = mid + 1;
    }
    return 1;
}
