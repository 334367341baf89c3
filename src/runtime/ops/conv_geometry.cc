#include "runtime/ops/conv_geometry.h"

namespace lowbit {

Result<WindowGeometry> ComputeWindow(const Node& node, const Shape& spatial_in,
                                     const Shape& kernel, bool allow_ceil_mode) {
  const std::string where = node.Describe() + ": ";
  const int s = static_cast<int>(spatial_in.size());
  if (s < 1 || s > 3) {
    return Unimplemented(where, s, " spatial dimensions (1 to 3 are supported)");
  }
  if (static_cast<int>(kernel.size()) != s) {
    return InvalidArgument(where, "kernel ", ShapeToString(kernel), " does not match ", s,
                           " spatial dims");
  }
  auto get = [&](const char* key, int64_t def, int n) -> Result<std::vector<int64_t>> {
    std::vector<int64_t> v = node.GetInts(key, std::vector<int64_t>(n, def));
    if (static_cast<int>(v.size()) != n) {
      return InvalidArgument(where, key, " has ", v.size(), " values, expected ", n);
    }
    return v;
  };
  std::vector<int64_t> strides, dilations, pads;
  LOWBIT_ASSIGN_OR_RETURN(strides, get("strides", 1, s));
  LOWBIT_ASSIGN_OR_RETURN(dilations, get("dilations", 1, s));
  LOWBIT_ASSIGN_OR_RETURN(pads, get("pads", 0, 2 * s));
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  const bool ceil_mode = node.GetInt("ceil_mode", 0) != 0;
  if (ceil_mode && !allow_ceil_mode) return InvalidArgument(where, "ceil_mode is not valid here");
  WindowGeometry g;
  g.spatial = s;
  const int off = 3 - s;
  for (int i = 0; i < s; ++i) {
    const int d = off + i;
    g.in[d] = spatial_in[i];
    g.k[d] = kernel[i];
    g.stride[d] = strides[i];
    g.dilation[d] = dilations[i];
    if (g.stride[d] < 1 || g.dilation[d] < 1 || g.k[d] < 1) {
      return InvalidArgument(where, "kernel, strides and dilations must be >= 1");
    }
    // Kernels index per-column tables (a few entries per kernel tap); no
    // model uses a window wider than 65536.
    if (g.k[d] > 65536) return InvalidArgument(where, "kernel extent ", g.k[d], " is over 65536");
    // Bounded so that the window arithmetic below cannot overflow.
    constexpr int64_t kMaxExtent = int64_t{1} << 31;
    if (g.in[d] > kMaxExtent || g.k[d] > kMaxExtent || g.stride[d] > kMaxExtent ||
        g.dilation[d] > kMaxExtent || pads[i] > kMaxExtent || pads[i + s] > kMaxExtent) {
      return InvalidArgument(where, "input extent ", g.in[d], ", kernel ", g.k[d], ", stride ",
                             g.stride[d], ", dilation ", g.dilation[d], " or pads ", pads[i], "/",
                             pads[i + s], " exceed 2^31");
    }
    const int64_t span = (g.k[d] - 1) * g.dilation[d] + 1;
    if (auto_pad == "NOTSET") {
      const int64_t pb = pads[i], pe = pads[i + s];
      if (pb < 0 || pe < 0) return InvalidArgument(where, "negative pads");
      g.pad_begin[d] = pb;
      const int64_t room = g.in[d] + pb + pe - span;
      if (room < 0) {
        return InvalidArgument(where, "window of ", span, " exceeds padded input of ",
                               g.in[d] + pb + pe);
      }
      g.out[d] = (ceil_mode ? (room + g.stride[d] - 1) / g.stride[d] : room / g.stride[d]) + 1;
      // A window that would start entirely in the end padding is dropped.
      if (ceil_mode && (g.out[d] - 1) * g.stride[d] >= g.in[d] + pb) --g.out[d];
    } else if (auto_pad == "VALID") {
      if (g.in[d] < span) return InvalidArgument(where, "window exceeds input");
      g.out[d] = (g.in[d] - span) / g.stride[d] + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      g.out[d] = (g.in[d] + g.stride[d] - 1) / g.stride[d];
      const int64_t total = std::max<int64_t>(0, (g.out[d] - 1) * g.stride[d] + span - g.in[d]);
      g.pad_begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else {
      return InvalidArgument(where, "unknown auto_pad '", auto_pad, "'");
    }
  }
  int64_t in_size = 1, out_size = 1;
  for (int d = 0; d < 3; ++d) {
    if (__builtin_mul_overflow(in_size, g.in[d], &in_size) ||
        __builtin_mul_overflow(out_size, g.out[d], &out_size)) {
      return InvalidArgument(where, "spatial input ", ShapeToString(spatial_in),
                             " or its output has more than 2^63 elements");
    }
  }
  return g;
}

Result<ConvDims> ComputeConvDims(const Node& node, const Shape& x, const Shape& w,
                                 const char* wname) {
  const std::string where = node.Describe() + ": ";
  if (x.size() < 3 || x.size() > 5 || w.size() != x.size()) {
    return InvalidArgument(where, "X ", ShapeToString(x), " and ", wname, " ", ShapeToString(w),
                           " must have the same rank 3..5");
  }
  ConvDims d;
  d.n = x[0];
  d.c = x[1];
  d.m = w[0];
  d.group = node.GetInt("group", 1);
  if (d.group < 1 || d.c % d.group != 0 || d.m % d.group != 0 || w[1] != d.c / d.group) {
    return InvalidArgument(where, "group ", d.group, " does not fit X ", ShapeToString(x), " and ",
                           wname, " ", ShapeToString(w));
  }
  const Shape kernel(w.begin() + 2, w.end());
  if (node.Has("kernel_shape") && node.GetInts("kernel_shape") != kernel) {
    return InvalidArgument(where, "kernel_shape differs from ", wname, " ", ShapeToString(w));
  }
  LOWBIT_ASSIGN_OR_RETURN(d.g, ComputeWindow(node, Shape(x.begin() + 2, x.end()), kernel, false));
  return d;
}

}  // namespace lowbit
