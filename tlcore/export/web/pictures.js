// Prepare a picture for the exported model exactly as the tlcore app does.
//
// The same steps as tlcore/export/pictures.py, pixel for pixel: the browser
// decodes the picture (JPEGs the way Pillow does, turned upright by its EXIF
// orientation, no colour-profile conversion); pictures larger than the model's
// size are shrunk by area averaging, smaller ones enlarged bilinearly
// (half-pixel centres), in float32 arithmetic (Math.fround after every step)
// and in TensorFlow's order of operations, then rounded half to even.
//
// One step cannot be copied: the app decodes a JPEG at least twice the model's
// size at libjpeg's reduced scale (1/2, 1/4 or 1/8: see jpeg_reduction in
// pictures.py), which no browser offers. The page decodes it in full and
// averages each block of that many pixels a side instead: on photos the
// prepared values then differ from the app's by about 0.1-0.4 levels on
// average (a few levels at most), against 0.5-5 without the averaging.
"use strict";

const f32 = Math.fround;

async function decodePicture(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let source = 0, target = 0; source < rgba.length; source += 4) {
    rgb[target++] = rgba[source];
    rgb[target++] = rgba[source + 1];
    rgb[target++] = rgba[source + 2];
  }
  return { width: bitmap.width, height: bitmap.height, rgb };
}

// The largest of libjpeg's reduced scales (8, 4, 2) that keeps both sides >= size; 1 if none (as pictures.py).
function jpegReduction(width, height, size) {
  const fits = Math.min(Math.floor(width / size), Math.floor(height / size));
  return [8, 4, 2].find((scale) => fits >= scale) || 1;
}

function isJpeg(bytes) {
  return bytes.length > 2 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

// Each block of scale x scale pixels averaged and rounded, as a reduced-scale JPEG decode nearly gives.
function averageBlocks(picture, scale) {
  const { width, height, rgb } = picture;
  const outWidth = Math.ceil(width / scale);
  const outHeight = Math.ceil(height / scale);
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let count = 0;
        for (let dy = 0; dy < scale && y * scale + dy < height; dy++) {
          for (let dx = 0; dx < scale && x * scale + dx < width; dx++) {
            sum += rgb[((y * scale + dy) * width + x * scale + dx) * 3 + c];
            count++;
          }
        }
        out[(y * outWidth + x) * 3 + c] = Math.round(sum / count);
      }
    }
  }
  return { width: outWidth, height: outHeight, rgb: out };
}

// Per output position: the source indices and float32 weights it sums, in order.
function areaWeights(inSize, outSize) {
  const scale = f32(inSize / outSize);
  const taps = [];
  for (let out = 0; out < outSize; out++) {
    const low = f32(out * scale);
    const high = f32((out + 1) * scale);
    const end = Math.ceil(high);
    const tap = [];
    for (let index = Math.floor(low); index < end; index++) {
      let weight;
      if (index < low) weight = index + 1 > high ? scale : f32(index + 1 - low);
      else weight = index + 1 > high ? f32(high - index) : 1;
      tap.push([Math.min(Math.max(index, 0), inSize - 1), weight]);
    }
    taps.push(tap);
  }
  return { taps, scale };
}

function resizeArea(picture, size) {
  const { width, height, rgb } = picture;
  const columns = areaWeights(width, size);
  const rows = areaWeights(height, size);
  const across = new Float32Array(height * size * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        columns.taps[x].forEach(([index, weight], k) => {
          const term = f32(rgb[(y * width + index) * 3 + c] * weight);
          sum = k === 0 ? term : f32(sum + term);
        });
        across[(y * size + x) * 3 + c] = sum;
      }
    }
  }
  const scale = f32(1 / f32(rows.scale * columns.scale));
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        rows.taps[y].forEach(([index, weight], k) => {
          const term = f32(across[(index * size + x) * 3 + c] * weight);
          sum = k === 0 ? term : f32(sum + term);
        });
        out[(y * size + x) * 3 + c] = f32(sum * scale);
      }
    }
  }
  return out;
}

function bilinearWeights(inSize, outSize) {
  const scale = f32(inSize / outSize);
  const weights = [];
  for (let out = 0; out < outSize; out++) {
    const position = f32(f32(f32(out + 0.5) * scale) - 0.5);
    const below = Math.floor(position);
    weights.push({
      lower: Math.max(below, 0), upper: Math.min(Math.ceil(position), inSize - 1), lerp: f32(position - below),
    });
  }
  return weights;
}

function resizeBilinear(picture, size) {
  const { width, height, rgb } = picture;
  const out = new Float32Array(size * size * 3);
  if (width === size && height === size) {
    out.set(rgb);
    return out;
  }
  const xs = bilinearWeights(width, size);
  const ys = bilinearWeights(height, size);
  const at = (y, x, c) => rgb[(y * width + x) * 3 + c];
  for (let y = 0; y < size; y++) {
    const { lower: top, upper: bottom, lerp: down } = ys[y];
    for (let x = 0; x < size; x++) {
      const { lower: left, upper: right, lerp: across } = xs[x];
      for (let c = 0; c < 3; c++) {
        const upperRow = f32(at(top, left, c) + f32(f32(at(top, right, c) - at(top, left, c)) * across));
        const lowerRow = f32(at(bottom, left, c) + f32(f32(at(bottom, right, c) - at(bottom, left, c)) * across));
        out[(y * size + x) * 3 + c] = f32(upperRow + f32(f32(lowerRow - upperRow) * down));
      }
    }
  }
  return out;
}

function roundHalfToEven(value) {
  const rounded = Math.round(value);
  return Math.abs(value % 1) === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

// A decoded picture as the model's input: float32 (size x size x 3), whole levels 0-255.
function resizeLikeTlcore(picture, size) {
  const shrinking = Math.max(picture.width, picture.height) > size;
  const resized = shrinking ? resizeArea(picture, size) : resizeBilinear(picture, size);
  for (let i = 0; i < resized.length; i++) resized[i] = Math.min(255, Math.max(0, roundHalfToEven(resized[i])));
  return resized;
}

async function preparePicture(blob, size) {
  let picture = await decodePicture(blob);
  const scale = jpegReduction(picture.width, picture.height, size);
  if (scale > 1 && isJpeg(new Uint8Array(await blob.slice(0, 3).arrayBuffer()))) {
    picture = averageBlocks(picture, scale);
  }
  return resizeLikeTlcore(picture, size);
}

globalThis.tlcorePictures = { decodePicture, jpegReduction, averageBlocks, resizeLikeTlcore, preparePicture };
