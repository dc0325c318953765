# Waits for a second line that the interactor, waiting for a guess, never
# sends: both are idle until the group's idleness limit.
n = int(input())
input()
