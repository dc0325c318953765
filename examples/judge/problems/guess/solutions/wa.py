# Guesses 1, 2, 3, ...: too many guesses.
n = int(input())
for y in range(1, n + 1):
    print("?", y, flush=True)
    if input() == "=":
        break
