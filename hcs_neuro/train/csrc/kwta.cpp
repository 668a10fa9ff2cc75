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
//
// Layout of the work: the NCHW tensor holds, for each channel, the drives of consecutive
// locations contiguously. A *tile* is one lane vector of consecutive locations of one sample;
// every step of the selection runs on all lanes of a tile at once (one location per lane), so
// each operation is one vector instruction over a contiguous row, nothing is transposed and the
// selection is branch-free. Tiles are visited in blocks (kwta_select) or in blocks of pooling
// rows (kwta_pool) whose rows are copied into a small buffer first.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// Lane vectors are passed between inlined helpers only: no ABI is at stake
#pragma GCC diagnostic ignored "-Wpsabi"

// A lane vector: 32 bytes, i.e. 8 float or 4 double lanes, one AVX2 register (64-byte vectors,
// two registers per operation, compiled to much slower code with GCC on AVX2). GCC/Clang vector
// extensions: arithmetic and comparisons act lane-wise, `c ? a : b` selects per lane.
template <typename T>
struct Lanes {
  static constexpr int64_t n = 32 / sizeof(T);
  typedef T V __attribute__((vector_size(32)));
  static V splat(T x) {
    V v;
    for (int64_t q = 0; q < n; ++q) v[q] = x;
    return v;
  }
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }
};

// `len` values from memory into a block of `nvec` lane vectors, zero-filled past `len`.
template <typename T, typename V>
static inline void copy_in(V* dst, const T* src, int64_t len, int64_t nvec) {
  constexpr int64_t lanes = sizeof(V) / sizeof(T);
  const int64_t full = std::min(len / lanes, nvec);
  for (int64_t u = 0; u < full; ++u) dst[u] = Lanes<T>::load(src + u * lanes);
  for (int64_t u = full; u < nvec; ++u) {
    V x = Lanes<T>::splat(T(0));
    for (int64_t q = 0; q < lanes && u * lanes + q < len; ++q) x[q] = src[u * lanes + q];
    dst[u] = x;
  }
}

// The first `len` values of a block of lane vectors to memory.
template <typename T, typename V>
static inline void copy_out(T* dst, const V* src, int64_t len) {
  constexpr int64_t lanes = sizeof(V) / sizeof(T);
  int64_t u = 0;
  for (; (u + 1) * lanes <= len; ++u) Lanes<T>::store(dst + u * lanes, src[u]);
  for (int64_t q = u * lanes; q < len; ++q) dst[q] = src[u][q - u * lanes];
}

// The slope of the binary activities' straight-through estimator at drive x:
// max(0, 1 - scale * |x - centre|) * scale, with the same float operations, in the same order, as
// the PyTorch path (no FMA: the extension is compiled with -ffp-contract=off). For lane vectors
// (|.| by a sign select, which gives the same result after the + 1) and for scalars.
template <typename V>
static inline V surrogate(V x, V centre, V neg_scale, V pos_scale) {
  const V zero = x - x;
  V a = x - centre;
  a = a < zero ? -a : a;
  a = a * neg_scale;
  a = a + (zero + 1);
  return (a > zero ? a : zero) * pos_scale;
}

template <typename T>
struct Tile {
  using L = Lanes<T>;
  using V = typename L::V;
  static constexpr int64_t kLanes = L::n;
  int64_t c, k;
  const V* v = nullptr;  // the tile's drives: channel j at v[j * stride] (lanes past the end hold 0)
  int64_t stride = 1;
  std::vector<V> top;    // [k + 1] the k+1 largest drives per lane, descending
  V kth, next;

  Tile(int64_t c_, int64_t k_) : c(c_), k(k_), top(k_ + 1) {}
  const V& at(int64_t j) const { return v[j * stride]; }

  // The centre of the surrogate: max(theta, 0.5), theta midway between the k-th and (k+1)-th drive.
  V centre() const {
    const V half = L::splat(static_cast<T>(0.5));
    const V theta = half * (kth + next);
    return theta > half ? theta : half;
  }

  // kth and next of the tile, by the cheaper selection: bisection takes about log2(range) + 3
  // passes over the channels, insertion k + 1 (per pass one lane operation per channel).
  void select(bool exact) {
    V lo = L::splat(std::numeric_limits<T>::infinity()), hi = -lo;
    for (int64_t j = 0; j < c; ++j) {
      const V x = at(j);
      lo = lo < x ? lo : x;
      hi = hi > x ? hi : x;
    }
    if (exact) {
      T range = T(0);
      for (int64_t q = 0; q < kLanes; ++q) {
        lo[q] = std::floor(lo[q]);
        hi[q] = std::floor(hi[q]);
        range = std::max(range, hi[q] - lo[q]);
      }
      const int passes = static_cast<int>(std::ceil(std::log2(static_cast<double>(range) + 1.0)));
      if (passes + 3 < k + 1 && select_by_bisection(lo, hi, passes)) return;
    }
    select_by_insertion();
  }

  // The k-th and (k+1)-th largest drive of every lane by insertion into a sorted list of k+1
  // (a compare-exchange network: max/min per slot, no branches): (k+1) * C lane operations.
  // Drives are finite, and which of two equal drives (+0 and -0 included) lands in a slot does
  // not matter, so the selects may compile to plain max/min instructions.
  __attribute__((optimize("finite-math-only", "no-signed-zeros")))
  void select_by_insertion() {
    const V ninf = L::splat(-std::numeric_limits<T>::infinity());
    for (int64_t i = 0; i <= k; ++i) top[i] = ninf;
    for (int64_t j = 0; j < c; ++j) {
      V x = at(j);
      for (int64_t i = 0; i <= k; ++i) {
        const V t = top[i];
        top[i] = t > x ? t : x;
        x = t > x ? x : t;
      }
    }
    kth = top[k - 1];
    next = top[k];
  }

  // Integer-valued drives: the k-th largest is the largest integer t with #{v >= t} >= k, found by
  // bisection between each lane's smallest and largest drive: `passes` counting passes of C lane
  // operations. Returns false if a lane's drives around the k-th are not integers after all (the
  // caller then uses insertion), so the result is always the exact k-th value.
  bool select_by_bisection(V lo, V hi, int passes) {
    const V one = L::splat(T(1)), zero = L::splat(T(0)), kk = L::splat(static_cast<T>(k));
    for (int p = 0; p < passes; ++p) {  // invariant: #{v >= lo} >= k
      V mid;
      for (int64_t q = 0; q < kLanes; ++q) mid[q] = lo[q] + std::floor((hi[q] - lo[q] + T(1)) * T(0.5));
      V cnt = zero;
      for (int64_t j = 0; j < c; ++j) cnt += at(j) >= mid ? one : zero;
      const auto up = cnt >= kk;
      lo = up ? mid : lo;
      hi = up ? hi : mid - one;
    }
    // lo is the k-th largest; the (k+1)-th is lo again if at least k+1 drives reach it, else the
    // largest drive below it
    const V ninf = L::splat(-std::numeric_limits<T>::infinity()), lo1 = lo + one;
    V ge = zero, gt = zero, ge1 = zero, below = ninf;
    for (int64_t j = 0; j < c; ++j) {
      const V x = at(j);
      ge += x >= lo ? one : zero;
      gt += x > lo ? one : zero;
      ge1 += x >= lo1 ? one : zero;
      const V b = x < lo ? x : ninf;
      below = below > b ? below : b;
    }
    kth = lo;
    next = ge >= kk + one ? lo : below;
    bool ok = true;  // #{v > lo} must equal #{v >= lo + 1} (integers) and be < k <= #{v >= lo}
    for (int64_t q = 0; q < kLanes; ++q) ok &= (gt[q] == ge1[q]) & (gt[q] < kk[q]) & (ge[q] >= kk[q]);
    return ok;
  }

  // Winners (and the surrogate) of every channel from kth/next, into the lane vectors
  // win[j * stride], surr[j * stride].
  template <bool exact>
  void write(V* win, V* surr, T neg_scale, T pos_scale) const {
    // locals, not members: the stores through win/surr (lane vectors, like kth and next) would
    // otherwise make the compiler reload the members after every store
    const V* const in = v;
    const int64_t st = stride, nc = c;
    const V kv = kth, one = L::splat(T(1)), zero = L::splat(T(0));
    const V centre = this->centre();
    const V nscale = L::splat(neg_scale), pscale = L::splat(pos_scale);
    V need = L::splat(static_cast<T>(k)), seen = zero;
    if constexpr (exact) {  // of the ties at the k-th drive, the first `need` by channel index win
      for (int64_t j = 0; j < nc; ++j) need -= in[j * st] > kv ? one : zero;
    }
    for (int64_t j = 0; j < nc; ++j) {
      const V x = in[j * st];
      V w;
      if constexpr (exact) {
        const auto tie = x == kv;
        w = (x > kv) | (tie & (seen < need)) ? one : zero;
        seen += tie ? one : zero;
      } else {
        w = x >= kv ? one : zero;
      }
      w = x > zero ? w : zero;
      win[j * st] = w;
      if (surr != nullptr) surr[j * st] = surrogate(x, centre, nscale, pscale);
    }
  }

};

// Locations are processed in blocks of up to kBlock tiles of one sample: each channel's row of the
// block (kBlock * 32 contiguous bytes) is copied into a buffer, every tile of the block is
// selected there, and the winners and the surrogate are copied back row by row, so that each of
// the C rows, which lie a whole channel plane apart, is read and written in runs of several cache
// lines rather than one vector at a time.
constexpr int64_t kBlock = 8;

template <typename T>
static void kwta_kernel(const T* d, T* win, T* surr, int64_t n, int64_t c, int64_t inner, int64_t k,
                        bool exact, double scale) {
  using L = Lanes<T>;
  using V = typename L::V;
  constexpr int64_t kLanes = L::n, kSpan = kBlock * kLanes;
  const T neg_scale = static_cast<T>(-scale), pos_scale = static_cast<T>(scale);
  const int64_t blocks = (inner + kSpan - 1) / kSpan;
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    Tile<T> tile(c, k);
    std::vector<V> in(c * kBlock), wout(c * kBlock), sout(surr ? c * kBlock : 0);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / blocks, p0 = (t % blocks) * kSpan;
      const int64_t len = std::min(kSpan, inner - p0);
      const int64_t base = b * c * inner + p0;
      const int64_t tiles = (len + kLanes - 1) / kLanes;
      // (fixed-size copies of one vector compile to single loads and stores; a library memcpy of
      // a few hundred bytes per row costs more than the selection)
      for (int64_t j = 0; j < c; ++j) copy_in(&in[j * kBlock], d + base + j * inner, len, tiles);
      tile.stride = kBlock;
      for (int64_t u = 0; u < tiles; ++u) {
        tile.v = &in[u];
        tile.select(exact);
        V* s = surr ? &sout[u] : nullptr;
        if (exact) tile.template write<true>(&wout[u], s, neg_scale, pos_scale);
        else tile.template write<false>(&wout[u], s, neg_scale, pos_scale);
      }
      for (int64_t j = 0; j < c; ++j) {
        copy_out(win + base + j * inner, &wout[j * kBlock], len);
        if (surr) copy_out(surr + base + j * inner, &sout[j * kBlock], len);
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

// One input row added into a row of window sums, and one gradient row spread back over its
// windows times the slope (KW > 0: the window width as a compile-time constant, for the common 2).
template <int KW, typename T>
static inline void add_row_pooled(const T* row, T* o, int64_t wo, int64_t kw) {
  const int64_t k = KW > 0 ? KW : kw;
  for (int64_t j = 0; j < wo; ++j)
    for (int64_t b = 0; b < k; ++b) o[j] += row[j * k + b];
}

template <int KW, typename T>
static inline void spread_row(const T* g, const T* slope, T* o, int64_t wo, int64_t kw) {
  const int64_t k = KW > 0 ? KW : kw;
  for (int64_t j = 0; j < wo; ++j)
    for (int64_t b = 0; b < k; ++b) o[j * k + b] = (T(0) + g[j]) * slope[j * k + b];
}

template <int KW, typename T>
static inline void spread_row_surrogate(const T* g, const T* drive, const T* centre, T* o, int64_t wo, int64_t kw,
                                        T neg_scale, T pos_scale) {
  const int64_t k = KW > 0 ? KW : kw;
  for (int64_t j = 0; j < wo; ++j)
    for (int64_t b = 0; b < k; ++b)
      o[j * k + b] = (T(0) + g[j]) * surrogate(drive[j * k + b], centre[j * k + b], neg_scale, pos_scale);
}

// The window sums of kh consecutive rows of width w (row stride w) into one output row of wo.
template <typename T>
static inline void pool_rows(const T* rows, T* out, int64_t w, int64_t wo, int64_t kh, int64_t kw) {
  for (int64_t j = 0; j < wo; ++j) out[j] = T(0);
  for (int64_t a = 0; a < kh; ++a) {
    if (kw == 2) add_row_pooled<2>(rows + a * w, out, wo, kw);
    else add_row_pooled<0>(rows + a * w, out, wo, kw);
  }
}

// A binary k-WTA layer followed by its sum pooling (kh x kw windows, stride = kernel, H and W
// multiples of the kernel), fused for training: per block of kh rows of one sample, the winners
// are selected as in kwta_kernel and summed over the windows at once, so the full-resolution
// winner map is never written; the surrogate's centre (one value per location) is kept instead
// of the surrogate itself, and the backward pass recomputes the slope from the drive. Returns
// (pooled window sums (N, C, H/kh, W/kw), centre (N, H, W)); the same numbers as kwta_select,
// then _STE and avg_pool2d(divisor_override=1) in hcs_neuro/training.py (tested).
template <typename T>
static void kwta_pool_kernel(const T* d, T* pooled, T* centre, int64_t n, int64_t c, int64_t h, int64_t w,
                             int64_t k, bool exact, int64_t kh, int64_t kw) {
  using L = Lanes<T>;
  using V = typename L::V;
  constexpr int64_t kLanes = L::n;
  const int64_t span = kh * w, tiles = (span + kLanes - 1) / kLanes, rows = h / kh, wo = w / kw;
  at::parallel_for(0, n * rows, 1, [&](int64_t begin, int64_t end) {
    Tile<T> tile(c, k);
    std::vector<V> in(c * tiles), wout(c * tiles), cen(tiles);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / rows, r = t % rows;
      if (t + 1 < end) {  // the next block's C scattered rows: ask for them early (the hardware
                          // prefetchers do not follow that many streams)
        const int64_t b1 = (t + 1) / rows, r1 = (t + 1) % rows;
        for (int64_t j = 0; j < c; ++j) {
          const char* row = reinterpret_cast<const char*>(d + ((b1 * c + j) * h + r1 * kh) * w);
          for (int64_t off = 0; off < span * static_cast<int64_t>(sizeof(T)); off += 64) __builtin_prefetch(row + off);
        }
      }
      for (int64_t j = 0; j < c; ++j) copy_in(&in[j * tiles], d + ((b * c + j) * h + r * kh) * w, span, tiles);
      tile.stride = tiles;
      const T one(1);  // the scale of the surrogate does not enter the winners
      for (int64_t u = 0; u < tiles; ++u) {
        tile.v = &in[u];
        tile.select(exact);
        if (exact) tile.template write<true>(&wout[u], nullptr, -one, one);
        else tile.template write<false>(&wout[u], nullptr, -one, one);
        cen[u] = tile.centre();
      }
      for (int64_t j = 0; j < c; ++j)
        pool_rows(reinterpret_cast<const T*>(&wout[j * tiles]), pooled + ((b * c + j) * rows + r) * wo, w, wo, kh, kw);
      const T* cflat = reinterpret_cast<const T*>(cen.data());
      std::copy(cflat, cflat + span, centre + (b * h + r * kh) * w);
    }
  });
}

std::vector<at::Tensor> kwta_pool(at::Tensor drive, int64_t k, bool exact, int64_t kh, int64_t kw) {
  TORCH_CHECK(drive.dim() == 4 && !drive.is_cuda(), "kwta_pool: a (N, C, H, W) CPU tensor");
  auto d = drive.contiguous();
  const int64_t n = d.size(0), c = d.size(1), h = d.size(2), w = d.size(3);
  TORCH_CHECK(k >= 1 && k < c, "need 1 <= k < channels");
  TORCH_CHECK(kh >= 1 && kw >= 1 && h % kh == 0 && w % kw == 0, "kwta_pool: H, W multiples of the kernel");
  auto pooled = at::empty({n, c, h / kh, w / kw}, d.options());
  auto centre = at::empty({n, h, w}, d.options());
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "kwta_pool", [&] {
    kwta_pool_kernel<scalar_t>(d.data_ptr<scalar_t>(), pooled.data_ptr<scalar_t>(), centre.data_ptr<scalar_t>(),
                               n, c, h, w, k, exact, kh, kw);
  });
  return {pooled, centre};
}

// The gradient of kwta_pool's drive: the pooled gradient spread over each window (as
// avg_pool2d's backward: 0 + g / 1) times the surrogate slope at the drive.
at::Tensor kwta_pool_backward(at::Tensor grad, at::Tensor drive, at::Tensor centre, double scale, int64_t kh,
                              int64_t kw) {
  auto g = grad.contiguous();
  auto d = drive.contiguous();
  auto cen = centre.contiguous();
  const int64_t n = d.size(0), c = d.size(1), h = d.size(2), w = d.size(3);
  TORCH_CHECK(g.dim() == 4 && g.size(0) == n && g.size(1) == c && g.size(2) * kh == h && g.size(3) * kw == w &&
                  cen.dim() == 3 && cen.size(0) == n && cen.size(1) == h && cen.size(2) == w &&
                  g.scalar_type() == d.scalar_type() && cen.scalar_type() == d.scalar_type(),
              "kwta_pool_backward: shapes or dtypes do not match the forward pass");
  auto out = at::empty_like(d);
  const int64_t wo = w / kw;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "kwta_pool_backward", [&] {
    using T = scalar_t;
    const T neg_scale = static_cast<T>(-scale), pos_scale = static_cast<T>(scale);
    const T* gp = g.data_ptr<T>();
    const T* dp = d.data_ptr<T>();
    const T* cp = cen.data_ptr<T>();
    T* op = out.data_ptr<T>();
    at::parallel_for(0, n * c, 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t b = p / c;
        for (int64_t i = 0; i < h; ++i) {
          const T* grow = gp + (p * (h / kh) + i / kh) * wo;
          const T* drow = dp + (p * h + i) * w;
          const T* crow = cp + (b * h + i) * w;
          T* orow = op + (p * h + i) * w;
          if (kw == 2) spread_row_surrogate<2>(grow, drow, crow, orow, wo, kw, neg_scale, pos_scale);
          else spread_row_surrogate<0>(grow, drow, crow, orow, wo, kw, neg_scale, pos_scale);
        }
      }
    });
  });
  return out;
}

// Sum pooling over non-overlapping kh x kw windows (stride = kernel, no padding, H and W
// multiples of the kernel) of integer-valued activities, and its gradient times the slope of the
// binary activities' straight-through estimator, for the pooling layer that follows a binary
// hypercolumn layer in training. The same results as F.avg_pool2d(x, k, divisor_override=1)
// (integer sums are exact in any order) and, backward, as avg_pool2d's gradient (0 + g / 1) times
// the slope: hcs_neuro/training.py's _STE followed by the pooling, bit for bit.
at::Tensor sum_pool2d(at::Tensor x, int64_t kh, int64_t kw) {
  TORCH_CHECK(x.dim() == 4 && kh >= 1 && kw >= 1 && x.size(2) % kh == 0 && x.size(3) % kw == 0,
              "sum_pool2d: (N, C, H, W) with H, W multiples of the kernel");
  auto xc = x.contiguous();
  const int64_t planes = xc.size(0) * xc.size(1), h = xc.size(2), w = xc.size(3);
  const int64_t ho = h / kh, wo = w / kw;
  auto out = at::empty({xc.size(0), xc.size(1), ho, wo}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "sum_pool2d", [&] {
    const scalar_t* src = xc.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* in = src + p * h * w;
        scalar_t* o = dst + p * ho * wo;
        for (int64_t i = 0; i < ho; ++i) pool_rows(in + i * kh * w, o + i * wo, w, wo, kh, kw);
      }
    });
  });
  return out;
}

at::Tensor sum_pool2d_backward(at::Tensor grad, at::Tensor slope, int64_t kh, int64_t kw) {
  auto g = grad.contiguous();
  auto sl = slope.contiguous();
  TORCH_CHECK(g.dim() == 4 && sl.dim() == 4 && sl.size(0) == g.size(0) && sl.size(1) == g.size(1) &&
                  sl.size(2) == g.size(2) * kh && sl.size(3) == g.size(3) * kw &&
                  sl.scalar_type() == g.scalar_type(),
              "sum_pool2d_backward: slope must be (N, C, Ho * kh, Wo * kw) of the gradient's dtype");
  const int64_t planes = g.size(0) * g.size(1), ho = g.size(2), wo = g.size(3);
  const int64_t w = wo * kw;
  auto out = at::empty_like(sl);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sum_pool2d_backward", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* sp = sl.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* gi = gp + p * ho * wo;
        for (int64_t i = 0; i < ho * kh; ++i) {
          const scalar_t* grow = gi + (i / kh) * wo;
          const scalar_t* srow = sp + (p * ho * kh + i) * w;
          scalar_t* orow = op + (p * ho * kh + i) * w;
          if (kw == 2) spread_row<2>(grow, srow, orow, wo, kw);
          else spread_row<0>(grow, srow, orow, wo, kw);
        }
      }
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("kwta_select", &kwta_select, "fused per-location k-WTA with the window surrogate");
  m.def("kwta_pool", &kwta_pool, "k-WTA of a binary layer fused with the sum pooling that follows it");
  m.def("kwta_pool_backward", &kwta_pool_backward, "its gradient, with the window surrogate");
  m.def("sum_pool2d", &sum_pool2d, "sum pooling over non-overlapping windows");
  m.def("sum_pool2d_backward", &sum_pool2d_backward, "its gradient times the activities' slope");
}
