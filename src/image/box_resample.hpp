// Fast area-averaging ("box") shrinking, used by resize, resize_center_crop and resized_crop
// when the filter is the box filter on both axes (ResizeFilter::box, or automatic when both
// axes shrink). It computes what stb_image_resize's box filter does when shrinking (the
// average of the covered source area, partial pixels weighted by coverage), to float rounding,
// in two separable passes over the covered rows only, without stb_image_resize's per-call filter
// set-up and scanline conversions. docs/data.md, "Images".
#pragma once

#include "imgsim/image/image.hpp"

namespace imgsim::image::detail {

// Resamples the source rectangle [x0, x1) x [y0, y1) (pixel units, 0 <= x0 < x1 <= width, same
// for y) to width x height into `dst` (not `src`) when the box filter applies: `filter`
// resolves to box on both axes, neither axis is enlarged, and the image has no alpha (4
// channels go to stb_image_resize, which weights colours by alpha). Returns false, leaving dst
// untouched, when it does not apply.
bool box_resample(const Image& src, Image& dst, int width, int height, ResizeFilter filter,
                  double x0, double y0, double x1, double y1);

}  // namespace imgsim::image::detail
