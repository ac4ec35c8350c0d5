import lib from './index.js';

export const {
  segmentName, segmentPath, parseSegmentName, findMount, listMounts, openSegment, frameName,
  compositionTime, Segment, SegmentError, SegmentNameError, MountError,
} = lib;
export default lib;
