// Scalar Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms (kernels/winograd.hpp): the oracle for the
// dispatched versions. One tile at a time, as plain products with the transform matrices, in the
// order V = B^T (d B), Y = (A^T M) A, Z = (A g) A^T; no row buffers, a bounds test per element.
#include <cstdint>

#include "kernels/winograd.hpp"

namespace imgsim::kernels::ref {
namespace {

const float kBt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
const float kAt[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
const float kA[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};

// dz = g * act'(z) through y = act(z) (nn/act.hpp).
float grad_value(int act, float slope, float g, float y) {
  switch (act) {
    case 1:
      return y > 0.0f ? g : 0.0f;
    case 2:
      return y > 0.0f ? g : slope * g;
    case 3:
      return g * ((1.0f - y) * (1.0f + y));  // as winograd.inc (no a*b+c for FMA to fuse)
    case 4:
      return g * y * (1.0f - y);
    default:
      return g;
  }
}

// Sum over l of a[l] * b[l] for 4 terms, in index order, skipping zero coefficients (they add
// nothing; skipping keeps a -0 input -0).
float dot4(const float* coef, const float* v, int stride) {
  bool any = false;
  float s = 0.0f;
  for (int l = 0; l < 4; ++l) {
    if (coef[l] == 0.0f) continue;
    const float t = coef[l] == 1.0f ? v[l * stride] : -v[l * stride];
    s = any ? s + t : t;
    any = true;
  }
  return s;
}

// One output of the output transform: z (+ *bias), then added to dst or stored as act(z).
void store_output(float z, const float* bias, int act, float slope, bool accumulate, float& dst) {
  if (bias) z = z + *bias;
  if (accumulate) {
    dst += z;
    return;
  }
  if (act == 1) z = z > 0.0f ? z : 0.0f;
  if (act == 2) z = z > 0.0f ? z : slope * z;
  dst = z;
}

#include "kernels/winograd4_formulas.inc"

// F(4x4, 3x3), one tile at a time: the patch (or tile) gathered with a bounds test per element,
// then the 1-D transforms of winograd4_formulas.inc along rows and then along columns.
void wino4_input(const WinoGeometry& g, const float* x, const float* y, int act, float slope,
                 int64_t t0, int64_t t1, float* v, int64_t ldv) {
  const int64_t C = g.channels, H = g.height, W = g.width;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t c = 0; c < C; ++c) {
      float d[6][6];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int64_t h = 4 * ty + i - g.pad_top, w = 4 * tx + j - g.pad_left;
          float val = 0.0f;
          if (h >= 0 && h < H && w >= 0 && w < W) {
            const int64_t at = ((n * C + c) * H + h) * W + w;
            val = y ? grad_value(act, slope, x[at], y[at]) : x[at];
          }
          d[i][j] = val;
        }
      float r[6][6];  // r[i] = (d B)[i] = B^T applied to row i
      for (int i = 0; i < 6; ++i)
        wf4_bt(d[i][0], d[i][1], d[i][2], d[i][3], d[i][4], d[i][5], r[i]);
      for (int j = 0; j < 6; ++j) {  // column j of B^T (d B)
        float col[6];
        wf4_bt(r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j], col);
        for (int i = 0; i < 6; ++i)
          v[(6 * i + j) * (C * ldv + kWinoXiPad) + c * ldv + (t - t0)] = col[i];
      }
    }
  }
}

// The 4x4 outputs (A^T M) A of one tile and filter, its 36 values at m[xi * xs] (xs: from M[xi]
// to M[xi + 1]).
void tile4_output(const float* m, int64_t xs, float z[4][4]) {
  float mm[6][6];
  for (int xi = 0; xi < 36; ++xi) mm[xi / 6][xi % 6] = m[xi * xs];
  float s[4][6];  // A^T M, column by column
  for (int j = 0; j < 6; ++j) {
    float col[4];
    wf4_at(mm[0][j], mm[1][j], mm[2][j], mm[3][j], mm[4][j], mm[5][j], col);
    for (int i = 0; i < 4; ++i) s[i][j] = col[i];
  }
  for (int i = 0; i < 4; ++i)  // (A^T M) A
    wf4_at(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], z[i]);
}

void wino4_output(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                  const float* bias, int act, float slope, bool accumulate, float* out) {
  const int64_t K = g.channels, P = g.out_h, Q = g.out_w;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t k = 0; k < K; ++k) {
      float z[4][4];
      tile4_output(m + k * ldm + (t - t0), K * ldm + kWinoXiPad, z);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const int64_t p = 4 * ty + i, q = 4 * tx + j;
          if (p >= P || q >= Q) continue;
          store_output(z[i][j], bias ? bias + k : nullptr, act, slope, accumulate,
                       out[((n * K + k) * P + p) * Q + q]);
        }
    }
  }
}

// The tile's 4x4 outputs as wino4_output computes them (bias, act), then each of its 2x2 windows
// pooled as maxpool2x2 does.
void wino4_output_pool(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                       const float* bias, int act, float slope, float* yp, int32_t* arg) {
  const int64_t K = g.channels, Q = g.out_w, pp = g.out_h / 2, qp = Q / 2;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t k = 0; k < K; ++k) {
      float z[4][4];
      tile4_output(m + k * ldm + (t - t0), K * ldm + kWinoXiPad, z);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          store_output(z[i][j], bias ? bias + k : nullptr, act, slope, false, z[i][j]);
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          const int64_t py = 2 * ty + a, px = 2 * tx + b;
          if (py >= pp || px >= qp) continue;
          const float v[4] = {z[2 * a][2 * b], z[2 * a][2 * b + 1], z[2 * a + 1][2 * b],
                              z[2 * a + 1][2 * b + 1]};
          const int64_t off[4] = {0, 1, Q, Q + 1};
          int best = 0;
          for (int i = 1; i < 4; ++i)
            if (v[i] > v[best]) best = i;
          const int64_t at = (n * K + k) * pp * qp + py * qp + px;
          yp[at] = v[best];
          arg[at] = static_cast<int32_t>(2 * py * Q + 2 * px + off[best]);
        }
    }
  }
}

void wino4_grad(const WinoGeometry& g, const float* dy, const float* y, int act, float slope,
                int64_t t0, int64_t t1, float* z, int64_t ldz) {
  const int64_t K = g.channels, P = g.out_h, Q = g.out_w;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t k = 0; k < K; ++k) {
      float gz[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const int64_t p = 4 * ty + i, q = 4 * tx + j;
          const int64_t at = ((n * K + k) * P + p) * Q + q;
          gz[i][j] = p < P && q < Q ? grad_value(act, slope, dy[at], y[at]) : 0.0f;
        }
      float h[6][4];  // A g, column by column
      for (int j = 0; j < 4; ++j) {
        float col[6];
        wf4_a(gz[0][j], gz[1][j], gz[2][j], gz[3][j], col);
        for (int i = 0; i < 6; ++i) h[i][j] = col[i];
      }
      for (int i = 0; i < 6; ++i) {  // (A g) A^T
        float row[6];
        wf4_a(h[i][0], h[i][1], h[i][2], h[i][3], row);
        for (int j = 0; j < 6; ++j)
          z[(6 * i + j) * (K * ldz + kWinoXiPad) + k * ldz + (t - t0)] = row[j];
      }
    }
  }
}

}  // namespace

void wino_input(const WinoGeometry& g, const float* x, const float* y, int act, float slope,
                int64_t t0, int64_t t1, float* v, int64_t ldv) {
  if (g.tile == 4) return wino4_input(g, x, y, act, slope, t0, t1, v, ldv);
  const int64_t C = g.channels, H = g.height, W = g.width;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t c = 0; c < C; ++c) {
      float d[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const int64_t h = 2 * ty + i - g.pad_top, w = 2 * tx + j - g.pad_left;
          float val = 0.0f;
          if (h >= 0 && h < H && w >= 0 && w < W) {
            const int64_t at = ((n * C + c) * H + h) * W + w;
            val = y ? grad_value(act, slope, x[at], y[at]) : x[at];
          }
          d[i][j] = val;
        }
      float db[4][4];  // d B: db[i][j] = sum_l d[i][l] B[l][j] = sum_l d[i][l] Bt[j][l]
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) db[i][j] = dot4(kBt[j], d[i], 1);
      for (int i = 0; i < 4; ++i)  // B^T (d B)
        for (int j = 0; j < 4; ++j)
          v[(4 * i + j) * (C * ldv + kWinoXiPad) + c * ldv + (t - t0)] = dot4(kBt[i], &db[0][j], 4);
    }
  }
}

void wino_output(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                 const float* bias, int act, float slope, bool accumulate, float* out) {
  if (g.tile == 4) return wino4_output(g, m, ldm, t0, t1, bias, act, slope, accumulate, out);
  const int64_t K = g.channels, P = g.out_h, Q = g.out_w;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t k = 0; k < K; ++k) {
      float mm[4][4];
      for (int xi = 0; xi < 16; ++xi)
        mm[xi / 4][xi % 4] = m[xi * (K * ldm + kWinoXiPad) + k * ldm + (t - t0)];
      float s[2][4];  // A^T M
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) s[i][j] = dot4(kAt[i], &mm[0][j], 4);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const int64_t p = 2 * ty + i, q = 2 * tx + j;
          if (p >= P || q >= Q) continue;
          float z = dot4(kAt[j], s[i], 1);  // (A^T M) A
          store_output(z, bias ? bias + k : nullptr, act, slope, accumulate,
                       out[((n * K + k) * P + p) * Q + q]);
        }
    }
  }
}

void wino_grad(const WinoGeometry& g, const float* dy, const float* y, int act, float slope,
               int64_t t0, int64_t t1, float* z, int64_t ldz) {
  if (g.tile == 4) return wino4_grad(g, dy, y, act, slope, t0, t1, z, ldz);
  const int64_t K = g.channels, P = g.out_h, Q = g.out_w;
  const int64_t tw = g.tiles_w(), tt = g.tiles_h() * tw;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / tt, ty = t % tt / tw, tx = t % tw;
    for (int64_t k = 0; k < K; ++k) {
      float gz[2][2];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const int64_t p = 2 * ty + i, q = 2 * tx + j;
          const int64_t at = ((n * K + k) * P + p) * Q + q;
          gz[i][j] = p < P && q < Q ? grad_value(act, slope, dy[at], y[at]) : 0.0f;
        }
      float h[4][2];  // A g
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 2; ++j) {
          const float c0 = kA[i][0], c1 = kA[i][1];
          if (c0 != 0.0f && c1 != 0.0f)
            h[i][j] = c1 > 0.0f ? gz[0][j] + gz[1][j] : gz[0][j] - gz[1][j];
          else
            h[i][j] = c0 != 0.0f ? gz[0][j] : -gz[1][j];
        }
      for (int i = 0; i < 4; ++i)  // (A g) A^T
        for (int j = 0; j < 4; ++j) {
          const float c0 = kA[j][0], c1 = kA[j][1];
          float val;
          if (c0 != 0.0f && c1 != 0.0f)
            val = c1 > 0.0f ? h[i][0] + h[i][1] : h[i][0] - h[i][1];
          else
            val = c0 != 0.0f ? h[i][0] : -h[i][1];
          z[(4 * i + j) * (K * ldz + kWinoXiPad) + k * ldz + (t - t0)] = val;
        }
    }
  }
}

void wino_output_pool(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                      const float* bias, int act, float slope, float* yp, int32_t* arg) {
  wino4_output_pool(g, m, ldm, t0, t1, bias, act, slope, yp, arg);
}

}  // namespace imgsim::kernels::ref
