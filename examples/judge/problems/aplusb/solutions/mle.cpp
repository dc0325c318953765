// Keeps 256 MiB, past the 64 MiB limit.
#include <cstring>
#include <iostream>
#include <vector>

int main() {
    long long a, b;
    std::cin >> a >> b;
    std::vector<char> table(256 << 20);
    std::memset(table.data(), 1, table.size());
    std::cout << a + b + table[12345] - 1 << "\n";
}
