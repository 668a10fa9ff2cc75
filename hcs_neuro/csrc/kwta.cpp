// Fused k-winners-take-all per hypercolumn for training (CPU).
//
// One pass over the channels at every location of an (N, C, *spatial) drive tensor replaces the
// dozen element-wise passes and the topk of the pure-PyTorch path in hcs_neuro/training.py
// (_kwta_torch, the winner mask, and the window straight-through surrogate). The results are
// bit-identical to that path (tested in tests/test_kwta_ext.py):
//
//   winners  exact=true : the k largest drives, ties resolved by the lower channel index
//                         (the NumPy reference's rule), and only drives > 0;
//            exact=false: every drive >= the k-th largest value, and > 0;
//   theta    midpoint of the k-th and (k+1)-th largest drives of the location;
//   surr     max(0, 1 - scale * |d - max(theta, 0.5)|) * scale   (triangle of half-width 1 in
//            real units around the winner/loser boundary; the gradient slope of binary activities).
//
// Requires 1 <= k < C (the caller handles k >= C and layers without k-WTA), and exact=true only
// for integer-valued drives (integer levels times integer weights), as in the PyTorch path.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

// Locations are processed in tiles of up to kTile consecutive positions of one sample: the tile's
// channels are copied into a small contiguous buffer (each channel's row of the tile is one cache
// line of the NCHW tensor), selected per location, and written back the same way.
constexpr int64_t kTile = 16;

// Hypercolumns of up to this many channels use rank counting (below) when bisection does not apply.
constexpr int64_t kRankMaxChannels = 64;

// Integer-valued (exact) drives: the k-th largest drive is the largest integer t with
// #{v >= t} >= k, found by bisection between the smallest and largest drive: about log2(range)
// vectorised counting passes instead of C. Returns false (use the general path) if the drives
// around the k-th are not integers after all, so the result is always the exact k-th value.
template <typename T>
static int32_t count_ge(const T* v, int32_t n, T t) {
  int32_t s = 0;
  for (int32_t j = 0; j < n; ++j) s += v[j] >= t;
  return s;
}

template <typename T>
static bool kth_by_bisection(const T* v, int64_t c, int64_t k, T& kth, T& next, int64_t& n_above) {
  const int32_t n = static_cast<int32_t>(c);
  T lo = v[0], hi = v[0];
  for (int32_t j = 1; j < n; ++j) {
    lo = std::min(lo, v[j]);
    hi = std::max(hi, v[j]);
  }
  lo = std::floor(lo);
  hi = std::floor(hi);
  // about log2(range) passes of C/8 vector operations, against C^2/8 for rank counting: bisect only
  // where that is fewer (small ranges such as pooled counts, or wide hypercolumns)
  if (c <= kRankMaxChannels && hi - lo >= static_cast<T>(int64_t(1) << (c / 8))) return false;
  while (lo < hi) {  // invariant: #{v >= lo} >= k
    const T mid = lo + std::floor((hi - lo + T(1)) * T(0.5));
    const bool up = count_ge(v, n, mid) >= k;  // branch-free update (the outcome is data-dependent)
    lo = up ? mid : lo;
    hi = up ? hi : mid - T(1);
  }
  int32_t ge = 0, eq = 0;
  T below = -std::numeric_limits<T>::infinity();
  for (int32_t j = 0; j < n; ++j) {
    ge += v[j] >= lo;
    eq += v[j] == lo;
    below = std::max(below, v[j] < lo ? v[j] : -std::numeric_limits<T>::infinity());
  }
  const int32_t above = ge - eq;
  if (above != count_ge(v, n, lo + T(1)) || above >= k || ge < k) return false;
  kth = lo;                               // the k-th largest drive
  next = ge >= k + 1 ? lo : below;        // the (k+1)-th largest
  n_above = above;
  return true;
}

// Otherwise, up to kRankMaxChannels channels, each channel's rank in the order (drive descending,
// channel index ascending) is counted directly: rank_j = #{i : v_i > v_j, or v_i == v_j and i < j}.
// The ranks are a permutation of 0..C-1; the k winners of the exact rule are the channels of rank
// < k and the k-th / (k+1)-th largest drives are those of rank k-1 and k. That is O(C^2)
// comparisons, but branch-free and vectorised over the channels. Wider hypercolumns use
// std::nth_element.
template <typename T>
static void kth_by_rank(const T* v, int64_t c, int64_t k, int32_t* rank, T& kth, T& next) {
  const int32_t n = static_cast<int32_t>(c);  // 32-bit indices: 8 lanes per AVX2 vector
  for (int32_t j = 0; j < n; ++j) rank[j] = 0;
  for (int32_t i = 0; i < n; ++i) {
    const T x = v[i];
    for (int32_t j = 0; j < n; ++j) rank[j] += (x > v[j]) | ((x == v[j]) & (i < j));
  }
  for (int64_t j = 0; j < c; ++j) {
    if (rank[j] == k - 1) kth = v[j];
    if (rank[j] == k) next = v[j];
  }
}

template <typename T>
static void kth_by_selection(const T* v, int64_t c, int64_t k, T* buf, T& kth, T& next) {
  std::copy(v, v + c, buf);
  std::nth_element(buf, buf + (k - 1), buf + c, std::greater<T>());
  kth = buf[k - 1];
  next = buf[k];
  for (int64_t j = k + 1; j < c; ++j) next = std::max(next, buf[j]);
}

template <typename T>
static void select_location(const T* v, T* win, T* surr, int64_t c, int64_t k, bool exact,
                            T neg_scale, T pos_scale, int32_t* rank, T* buf) {
  T kth = v[0], next = v[0];
  int64_t n_above = -1;  // #{drives > kth}, when known
  bool ranked = false;
  if (exact && kth_by_bisection(v, c, k, kth, next, n_above)) {
  } else if (c <= kRankMaxChannels) {
    kth_by_rank(v, c, k, rank, kth, next);
    ranked = true;
  } else {
    kth_by_selection(v, c, k, buf, kth, next);
  }
  if (exact && ranked) {
    for (int64_t j = 0; j < c; ++j) win[j] = ((rank[j] < k) & (v[j] > T(0))) ? T(1) : T(0);
  } else if (exact) {
    // every drive above the k-th wins; of the ties at the k-th, the first `need` by channel index
    if (n_above < 0) {
      n_above = 0;
      for (int64_t j = 0; j < c; ++j) n_above += v[j] > kth;
    }
    const int64_t need = k - n_above;
    int64_t seen = 0;
    for (int64_t j = 0; j < c; ++j) {
      const T x = v[j];
      const int64_t tie = x == kth;
      const bool w = (x > kth) | ((tie != 0) & (seen < need));
      seen += tie;
      win[j] = (w & (x > T(0))) ? T(1) : T(0);
    }
  } else {
    for (int64_t j = 0; j < c; ++j) win[j] = ((v[j] >= kth) & (v[j] > T(0))) ? T(1) : T(0);
  }
  if (surr != nullptr) {
    const T theta = static_cast<T>(0.5) * (kth + next);
    const T centre = std::max(theta, static_cast<T>(0.5));
    for (int64_t j = 0; j < c; ++j) {
      // the same float operations, in the same order, as the PyTorch path (no FMA: the
      // extension is compiled with -ffp-contract=off)
      T s = std::abs(v[j] - centre) * neg_scale;
      s = s + T(1);
      surr[j] = (s > T(0) ? s : T(0)) * pos_scale;
    }
  }
}

template <typename T>
static void kwta_kernel(const T* d, T* win, T* surr, int64_t n, int64_t c, int64_t inner, int64_t k,
                        bool exact, double scale) {
  const T neg_scale = static_cast<T>(-scale), pos_scale = static_cast<T>(scale);
  const int64_t tiles = (inner + kTile - 1) / kTile;
  at::parallel_for(0, n * tiles, 4, [&](int64_t begin, int64_t end) {
    std::vector<T> in(kTile * c), wout(kTile * c), sout(surr ? kTile * c : 0);
    std::vector<int32_t> rank(c);
    std::vector<T> buf(c);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / tiles, p0 = (t % tiles) * kTile;
      const int64_t len = std::min(kTile, inner - p0);
      const int64_t base = b * c * inner + p0;
      for (int64_t j = 0; j < c; ++j) {
        const T* row = d + base + j * inner;
        for (int64_t q = 0; q < len; ++q) in[q * c + j] = row[q];
      }
      for (int64_t q = 0; q < len; ++q) {
        select_location(in.data() + q * c, wout.data() + q * c, surr ? sout.data() + q * c : nullptr,
                        c, k, exact, neg_scale, pos_scale, rank.data(), buf.data());
      }
      for (int64_t j = 0; j < c; ++j) {
        T* wrow = win + base + j * inner;
        for (int64_t q = 0; q < len; ++q) wrow[q] = wout[q * c + j];
        if (surr) {
          T* srow = surr + base + j * inner;
          for (int64_t q = 0; q < len; ++q) srow[q] = sout[q * c + j];
        }
      }
    }
  });
}

std::vector<at::Tensor> kwta_select(at::Tensor drive, int64_t k, bool exact, bool want_surr, double scale) {
  TORCH_CHECK(drive.dim() >= 2, "drive must be (N, C, ...)");
  TORCH_CHECK(!drive.is_cuda(), "CPU only");
  auto d = drive.contiguous();
  const int64_t n = d.size(0), c = d.size(1);
  TORCH_CHECK(k >= 1 && k < c, "need 1 <= k < channels");
  const int64_t inner = n * c ? d.numel() / (n * c) : 0;  // an empty batch has no locations
  auto win = at::empty_like(d);
  at::Tensor surr = want_surr ? at::empty_like(d) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "kwta_select", [&] {
    kwta_kernel<scalar_t>(d.data_ptr<scalar_t>(), win.data_ptr<scalar_t>(),
                          want_surr ? surr.data_ptr<scalar_t>() : nullptr, n, c, inner, k, exact, scale);
  });
  if (want_surr) return {win, surr};
  return {win};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("kwta_select", &kwta_select, "fused per-location k-WTA with the window surrogate");
}
