"""The guessing game: tells the solution N, then answers each "? Y" with
"<" (the secret is smaller), ">" (larger) or "=" (found). argv[1] holds
"N SECRET". Exit 0: found within 20 guesses; 1: not (WA); 2: a malformed
guess (PE)."""

import sys

n, secret = map(int, open(sys.argv[1]).read().split())
print(n, flush=True)
for _ in range(20):  # enough for a binary search of 1..10^6
    guess = sys.stdin.readline().split()
    if not guess:
        sys.exit(1)  # the solution ended without finding it
    if len(guess) != 2 or guess[0] != "?" or not guess[1].isdigit():
        sys.exit(2)
    y = int(guess[1])
    print("=" if y == secret else "<" if secret < y else ">", flush=True)
    if y == secret:
        sys.exit(0)
sys.exit(1)
