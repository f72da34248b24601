// Posts every render quantum of the first input channel to the page, which encodes 20 ms at a
// time (the capture path of browsers without MediaStreamTrackProcessor, such as Firefox).
class VideocallCapture extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("videocall-capture", VideocallCapture);
