package spec

import "testing"

func f(v float64) *float64 { return &v }

// Decide: the verdict of every kind of end, and the priority among limits.
func TestDecide(t *testing.T) {
	mem := int64(1 << 20)
	limits := Limits{CPUTime: f(1), RealTime: f(2), IdlenessTime: f(0.5), Memory: &mem}
	m := func(real, cpu float64) Metrics {
		return Metrics{RealTime: real, CPUTime: cpu, IdlenessTime: IdlenessOf(real, cpu)}
	}
	cases := []struct {
		name    string
		out     Outcome
		verdict string
		code    *int
	}{
		{"exited", Outcome{ExitCode: 3, Metrics: m(0.1, 0.1)}, VerdictOK, ptr(3)},
		{"signaled", Outcome{Signal: 11, Metrics: m(0.1, 0.1)}, VerdictSignaled, ptr(-11)},
		{"killed for cpu", Outcome{Signal: 9, KilledFor: LimitCPUTime, Metrics: m(1, 0.999)}, VerdictCPUTimeLimit, nil},
		{"exited past the cpu limit", Outcome{Metrics: m(1.2, 1.1)}, VerdictCPUTimeLimit, nil},
		{"killed for real time", Outcome{Signal: 9, KilledFor: LimitRealTime, Metrics: m(2, 0.1)}, VerdictRealTimeLimit, nil},
		{"killed for idleness", Outcome{Signal: 9, KilledFor: LimitIdlenessTime, Metrics: m(0.6, 0.1)}, VerdictIdlenessTimeLimit, nil},
		{"oom", Outcome{Signal: 9, OOMKilled: true, Metrics: m(0.1, 0.1)}, VerdictMemoryLimitExceeded, nil},
		{"exited past the memory limit", Outcome{Metrics: Metrics{RealTime: 0.1, CPUTime: 0.1, Memory: 1<<20 + 4096}}, VerdictMemoryLimitExceeded, nil},
		{"exited at the memory limit", Outcome{Metrics: Metrics{RealTime: 0.1, CPUTime: 0.1, Memory: 1 << 20}}, VerdictOK, ptr(0)},
		{"cpu beats real", Outcome{KilledFor: LimitRealTime, Metrics: m(2.1, 1.5)}, VerdictCPUTimeLimit, nil},
		{"real beats idleness", Outcome{KilledFor: LimitIdlenessTime, Metrics: m(2.1, 0.1)}, VerdictRealTimeLimit, nil},
		{"idleness beats memory", Outcome{OOMKilled: true, Metrics: m(1.0, 0.1)}, VerdictIdlenessTimeLimit, nil},
	}
	for _, c := range cases {
		got := Decide(limits, c.out)
		if got.Verdict != c.verdict {
			t.Errorf("%s: verdict %s, want %s", c.name, got.Verdict, c.verdict)
		}
		if (got.ExitCode == nil) != (c.code == nil) || got.ExitCode != nil && *got.ExitCode != *c.code {
			t.Errorf("%s: exit code %v, want %v", c.name, got.ExitCode, c.code)
		}
	}
}

func ptr(v int) *int { return &v }

func TestValidate(t *testing.T) {
	one, n := 1.0, int64(1)
	ok := RunRequest{Argv: []string{"a"}, Limits: Limits{CPUTime: &one, Processes: &n}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a minimal request: %v", err)
	}
	big := int64(MaxMemoryLimit + 1)
	for name, r := range map[string]RunRequest{
		"no argv":      {Limits: ok.Limits},
		"no cpu limit": {Argv: ok.Argv, Limits: Limits{Processes: &n}},
		"huge memory":  {Argv: ok.Argv, Limits: Limits{CPUTime: &one, Processes: &n, Memory: &big}},
		"bad env":      {Argv: ok.Argv, Env: map[string]string{"A=B": "c"}, Limits: ok.Limits},
	} {
		if r.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
