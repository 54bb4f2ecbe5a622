// knn_graph.bin: the kNN graph of a work dir's index, saved so that a re-scan updates the rows
// new images enter instead of recomputing all of them (index/graph_update.h). Rows by index
// position (embedding_index.pos), k neighbour positions (int32, -1 = none) then k similarities
// (float32) per row. The header carries a generation that the database's knn_state names, so
// a graph and a database from different moments (a crash between the two writes) are never
// used together: the scan then rebuilds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint::store {

inline const char* kGraphName = "knn_graph.bin";

struct SavedGraph {
    uint64_t generation = 0;
    int64_t n = 0;
    int k = 0;
    std::vector<int64_t> ids; // n x k positions, -1 = none
    std::vector<float> sims;  // n x k
};

// Writes `path` through a .tmp file and a rename, synced: n x k ids and sims (no copy of them is
// made: at 10 M x 10 they are 1.2 GB). Throws vislint::Error.
void save_graph(const std::string& path, uint64_t generation, int64_t n, int k, const int64_t* ids,
                const float* sims);
// False (and `g` untouched) when the file is missing, of another format or truncated.
bool load_graph(const std::string& path, SavedGraph* g);

} // namespace vislint::store
