lo, hi = 1, int(input())
while lo <= hi:
    mid = (lo + hi) // 2
    print("?", mid, flush=True)
    answer = input()
    if answer == "=":
        break
    lo, hi = (lo, mid - 1) if answer == "<" else (mid + 1, hi)
