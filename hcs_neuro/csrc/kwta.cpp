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
// Requires 1 <= k < C (the caller handles k >= C and layers without k-WTA).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

template <typename T>
static void kwta_kernel(const T* d, T* win, T* surr, int64_t n, int64_t c, int64_t inner, int64_t k,
                        bool exact, double scale) {
  const int64_t locations = n * inner;
  const T neg_scale = static_cast<T>(-scale), pos_scale = static_cast<T>(scale);
  at::parallel_for(0, locations, 64, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(c);
    for (int64_t loc = begin; loc < end; ++loc) {
      const int64_t b = loc / inner, p = loc % inner;
      const int64_t base = b * c * inner + p;
      for (int64_t j = 0; j < c; ++j) buf[j] = d[base + j * inner];
      std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), std::greater<T>());
      const T kth = buf[k - 1];
      T next = buf[k];
      for (int64_t j = k + 1; j < c; ++j) next = std::max(next, buf[j]);
      // ties at the k-th value: with exact keys only the first `need` channels (by index) win
      int64_t need = k;
      if (exact) {
        for (int64_t j = 0; j < c; ++j) need -= d[base + j * inner] > kth;
      }
      const T theta = static_cast<T>(0.5) * (kth + next);
      const T centre = std::max(theta, static_cast<T>(0.5));
      for (int64_t j = 0; j < c; ++j) {
        const int64_t at = base + j * inner;
        const T v = d[at];
        bool w;
        if (v > kth) {
          w = true;
        } else if (v == kth) {
          w = exact ? (need-- > 0) : true;
        } else {
          w = false;
        }
        win[at] = (w && v > 0) ? T(1) : T(0);
        if (surr != nullptr) {
          // the same float operations, in the same order, as the PyTorch path (no FMA: the
          // extension is compiled with -ffp-contract=off)
          T s = std::abs(v - centre) * neg_scale;
          s = s + T(1);
          surr[at] = (s > T(0) ? s : T(0)) * pos_scale;
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
  const int64_t inner = c ? d.numel() / (n * c) : 0;
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
