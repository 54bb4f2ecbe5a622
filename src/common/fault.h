// Fault injection for crash tests (docs/workdir.md, "Testing hooks").
//
// VISLINT_FAULT=STAGE:N makes the N-th call of fault_point(STAGE) abort() the process: no
// destructors, no flush, like kill -9. VISLINT_FAULT=STAGE:N:sleep instead makes that call and
// every later one at STAGE sleep 50 ms, so a test can signal a scan that is surely mid-stage.
// Stages: features, analyse, commit, knn, knn_saved, derive, report, run_json (docs/workdir.md). The variable is read
// once; without it fault_point() is one integer test. Thread-safe.
#pragma once

namespace vislint {

void fault_point(const char* stage);

// VISLINT_FAULT_COMMIT_EVERY=N: the analyse stage also commits after every N records (it
// otherwise commits once a second), so that a crash test's kill lands between commits on a
// small dataset. 0 when unset.
int fault_commit_every();

} // namespace vislint
