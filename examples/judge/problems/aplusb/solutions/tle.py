a, b = map(int, input().split())
while True:  # forgets to stop
    pass
