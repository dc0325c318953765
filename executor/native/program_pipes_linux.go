package native

import "fmt"

// splitRunFDs tells the fds sent with a run request apart: the run's
// accounting fd comes first, the pipe ends of a run_group's program last.
func splitRunFDs(m *initMessage, fds []int) (acctFDs, pipeFDs []int, err error) {
	n := len(fds) - len(m.PipeFDs)
	if n < 0 {
		return nil, nil, fmt.Errorf("the run names %d pipes but %d fds came with it", len(m.PipeFDs), len(fds))
	}
	return fds[:n], fds[n:], nil
}

// withPipes puts the pipe ends in the program's files (fd i becomes
// files[i]): pipeFDs[k] becomes fd targets[k], in place of the stdio file
// opened for it. Gaps between are closed (-1) in the program.
func withPipes(files []int, targets []int, pipeFDs []int) []int {
	for k, fd := range targets {
		for len(files) <= fd {
			files = append(files, -1)
		}
		files[fd] = pipeFDs[k]
	}
	return files
}
