/**
 * The broadcaster: camera or screen, and sending it. In an SFU room the browser sends one stream, to
 * the room's relay, which forwards it to every viewer; in a PeerToPeer room it sends one stream per
 * viewer (a star), so its upload grows with the audience.
 */
import SimplePeer from 'simple-peer';
import {
  RELAY_PEER,
  type SignalData,
  type SignalEnvelope,
  type SignalMessage,
  type Welcome,
} from '../protocol.js';
import { newPcId, type Session } from './connection.js';
import { overlay, toast, ui } from './ui.js';

/** simple-peer keeps its RTCPeerConnection in a private field; tests read stats through it. */
export type PeerWithPc = SimplePeer.Instance & { _pc?: RTCPeerConnection };

const RETRY_MS = 2000;

/** One outgoing peer connection, offered by this page, re-offered when it fails while still wanted. */
class Outgoing {
  readonly pc = newPcId();
  readonly peer: PeerWithPc;
  private closed = false;

  constructor(session: Session, stream: MediaStream, to: string | undefined, onLost: () => void) {
    this.peer = new SimplePeer({
      initiator: true,
      stream,
      trickle: true,
      config: { iceServers: session.iceServers },
    });
    const pc = this.pc;
    this.peer.on('signal', (data: SimplePeer.SignalData) => {
      const envelope: SignalEnvelope = { pc, data: data as SignalData, ...(to ? { to } : {}) };
      session.socket.emit('signal', envelope);
    });
    const lost = (): void => {
      if (this.closed) return;
      this.closed = true;
      onLost();
    };
    this.peer.on('close', lost);
    this.peer.on('error', (err: Error) => {
      console.warn('peer error', to ?? RELAY_PEER, err.message);
      lost();
    });
  }

  close(): void {
    this.closed = true;
    this.peer.destroy();
  }
}

export class Broadcaster {
  private stream: MediaStream | null = null;
  private source: 'camera' | 'screen' | null = null;
  /** PeerToPeer: the viewers, and the connection to each. SFU: the one connection to the relay. */
  private readonly viewers = new Set<string>();
  private readonly peers = new Map<string, Outgoing>();

  constructor(private readonly session: Session) {
    const { socket } = session;
    socket.on('viewer:joined', ({ id }) => this.onViewer(id, true));
    socket.on('viewer:left', ({ id }) => this.onViewer(id, false));
    socket.on('media:republish', () => this.connectAll());
    socket.on('signal', (s) => this.onSignal(s));
    ui.broadcasterControls.hidden = false;
    ui.btnCamera.addEventListener('click', () => {
      if (this.source === 'camera') this.stop(true);
      else void this.startCamera();
    });
    ui.btnScreen.addEventListener('click', () => {
      if (this.source === 'screen') this.stop(true);
      else void this.shareScreen();
    });
    ui.btnMic.addEventListener('click', () => {
      const audio = this.stream?.getAudioTracks()[0];
      if (audio) audio.enabled = !audio.enabled;
      this.render();
    });
    this.render();
  }

  private get sfu(): boolean {
    return this.session.welcome?.media.mode !== 'PeerToPeer';
  }

  /** Where this page sends its stream: the relay (SFU), or each viewer (PeerToPeer). */
  private targets(): string[] {
    return this.sfu ? [RELAY_PEER] : [...this.viewers];
  }

  private connect(target: string): void {
    this.peers.get(target)?.close();
    this.peers.delete(target);
    const stream = this.stream;
    if (!stream || !this.session.socket.connected) return;
    const out: Outgoing = new Outgoing(
      this.session,
      stream,
      target === RELAY_PEER ? undefined : target,
      () => {
        if (this.peers.get(target) !== out) return;
        this.peers.delete(target);
        // The connection failed while still wanted: offer again shortly.
        setTimeout(() => {
          if (this.stream && this.targets().includes(target) && !this.peers.has(target)) this.connect(target);
        }, RETRY_MS);
      },
    );
    this.peers.set(target, out);
  }

  private connectAll(): void {
    for (const target of this.targets()) this.connect(target);
  }

  private dropAll(): void {
    for (const out of this.peers.values()) out.close();
    this.peers.clear();
  }

  onWelcome(w: Welcome): void {
    this.viewers.clear();
    (w.viewers ?? []).forEach((id) => this.viewers.add(id));
    if (this.stream) {
      this.session.socket.emit('stream:state', { live: true });
      this.connectAll();
    } else if (sessionStorage.getItem('streamroom:live') === 'camera') {
      void this.startCamera(); // resume after a reload: the camera was on before
    }
    this.render();
  }

  onDisconnect(replaced: boolean): void {
    this.dropAll();
    this.viewers.clear();
    if (replaced) this.stop(false);
  }

  private onViewer(id: string, joined: boolean): void {
    if (this.sfu) return;
    if (joined) {
      this.viewers.add(id);
      // Announced again (its replica re-registered it): keep a connection that works.
      if (!this.peers.get(id)?.peer.connected) this.connect(id);
    } else {
      this.viewers.delete(id);
      this.peers.get(id)?.close();
      this.peers.delete(id);
    }
  }

  private onSignal(s: SignalMessage): void {
    const out = this.peers.get(s.from);
    if (out && out.pc === s.pc) out.peer.signal(s.data as SimplePeer.SignalData);
  }

  private render(): void {
    ui.btnCamera.textContent = this.source === 'camera' ? 'Stop camera' : 'Start camera';
    ui.btnCamera.className = `btn ${this.source === 'camera' ? 'btn-danger' : 'btn-primary'}`;
    ui.btnScreen.textContent = this.source === 'screen' ? 'Stop sharing' : 'Share screen';
    const audio = this.stream?.getAudioTracks()[0];
    ui.btnMic.disabled = !audio;
    ui.btnMic.textContent = audio && !audio.enabled ? 'Unmute mic' : 'Mute mic';
    ui.roleTag.hidden = !this.stream;
    if (this.stream) overlay(null);
    else overlay('You are offline', 'Start your camera or share your screen to go live.');
  }

  private setStream(next: MediaStream, kind: 'camera' | 'screen'): void {
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = next;
    this.source = kind;
    ui.video.srcObject = next;
    ui.video.muted = true; // never play your own microphone back
    void ui.video.play().catch(() => undefined);
    sessionStorage.setItem('streamroom:live', kind);
    next.getVideoTracks()[0]?.addEventListener('ended', () => {
      if (this.stream === next) this.stop(true);
    });
    this.connectAll();
    this.session.socket.emit('stream:state', { live: true });
    this.render();
  }

  stop(announce: boolean): void {
    this.dropAll();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.source = null;
    ui.video.srcObject = null;
    sessionStorage.removeItem('streamroom:live');
    if (announce && this.session.socket.connected) this.session.socket.emit('stream:state', { live: false });
    this.render();
  }

  /** Browsers offer camera and screen only to secure pages: https, or http on localhost. */
  private mediaAllowed(): boolean {
    if (window.isSecureContext && navigator.mediaDevices) return true;
    toast(
      'Broadcasting needs a secure page: the browser offers camera and screen only over https:// or on ' +
        'localhost. Open the room over HTTPS (an Ingress with TLS) or through localhost ' +
        '(kubectl port-forward); viewers can watch over plain http.',
    );
    return false;
  }

  private async startCamera(): Promise<void> {
    if (!this.mediaAllowed()) return;
    try {
      let media: MediaStream;
      try {
        media = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 1280 }, height: { ideal: 720 } },
          audio: true,
        });
      } catch {
        media = await navigator.mediaDevices.getUserMedia({ video: true });
      }
      this.setStream(media, 'camera');
    } catch (err) {
      toast(`Camera unavailable: ${(err as Error).message}`);
    }
  }

  private async shareScreen(): Promise<void> {
    if (!this.mediaAllowed()) return;
    try {
      const media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
      this.setStream(media, 'screen');
    } catch (err) {
      toast(`Screen sharing unavailable: ${(err as Error).message}`);
    }
  }

  /** For tests and troubleshooting: the peer connections, and (PeerToPeer) the viewers. */
  debug() {
    return {
      peers: (): RTCPeerConnection[] =>
        [...this.peers.values()].flatMap((o) => (o.peer._pc ? [o.peer._pc] : [])),
      viewers: (): string[] => [...this.viewers],
    };
  }
}
