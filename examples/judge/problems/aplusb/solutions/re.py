a, b = map(int, input().split())
print(a + b, {}["no such key"])  # KeyError: exit status 1
