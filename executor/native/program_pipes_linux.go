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

// withPipes puts the pipe ends in the program's files (forkexec's list: fd
// i becomes files[i]): pipeFDs[k] becomes fd targets[k], in place of the
// stdio file opened for it. Gaps between are closed (-1) in the program.
func withPipes(files []uintptr, targets []int, pipeFDs []int) []uintptr {
	for k, fd := range targets {
		for len(files) <= fd {
			files = append(files, ^uintptr(0))
		}
		files[fd] = uintptr(pipeFDs[k])
	}
	return files
}
