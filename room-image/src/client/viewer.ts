/**
 * The viewer: one incoming peer connection, offered by the relay (SFU) or by the broadcaster
 * (PeerToPeer), and a quiet hint when this viewer's own connection is poor.
 */
import SimplePeer from 'simple-peer';
import type { SignalData, SignalEnvelope, SignalMessage } from '../protocol.js';
import type { PeerWithPc } from './broadcaster.js';
import type { Session } from './connection.js';
import { overlay, ui } from './ui.js';

const QUALITY_INTERVAL_MS = 2000;
/** Loss above this share of the last interval's video packets counts as a poor connection. */
const POOR_LOSS = 0.05;

export class Viewer {
  private current: { peer: PeerWithPc; pc: string; from: string } | null = null;
  private quality: { received: number; lost: number; poor: boolean } = { received: 0, lost: 0, poor: false };

  constructor(private readonly session: Session) {
    session.socket.on('signal', (s) => this.onSignal(s));
    ui.viewerControls.hidden = false;
    const renderSound = (): void => {
      ui.btnSound.textContent = ui.video.muted ? 'Unmute' : 'Mute';
      ui.btnSound.className = `btn ${ui.video.muted ? 'btn-primary' : ''}`;
    };
    ui.btnSound.addEventListener('click', () => {
      ui.video.muted = !ui.video.muted;
      void ui.video.play().catch(() => undefined);
      renderSound();
    });
    ui.btnFullscreen.addEventListener('click', () => {
      const wrap = ui.video.parentElement;
      if (document.fullscreenElement) void document.exitFullscreen();
      else void wrap?.requestFullscreen().catch(() => undefined);
    });
    renderSound();
    overlay('Connecting…');
    setInterval(() => void this.checkQuality(), QUALITY_INTERVAL_MS);
  }

  private get sfu(): boolean {
    return this.session.welcome?.media.mode !== 'PeerToPeer';
  }

  close(): void {
    this.current?.peer.destroy();
    this.current = null;
    ui.video.srcObject = null;
  }

  /**
   * Follows the room's presence. In an SFU room the connection to the relay stays up while the
   * broadcaster is away, so the picture comes back as soon as they do; in a PeerToPeer room the
   * broadcaster's connection goes with them.
   */
  refresh(): void {
    if (!this.session.socket.connected) return;
    const { presence } = this.session;
    if (!this.sfu && !(presence.broadcasterOnline && presence.live)) this.close();
    this.showState();
  }

  /** The overlay over the video: why there is no picture, or none when there is one. */
  private showState(): void {
    const { presence } = this.session;
    if (!presence.broadcasterOnline) {
      overlay(
        'Offline',
        'The broadcaster is not here right now. This page will start playing when they go live.',
      );
    } else if (!presence.live) {
      overlay('Starting soon', 'The broadcaster is online and will start the stream shortly.');
    } else if (!ui.video.srcObject) {
      overlay('Connecting to the stream…');
    } else {
      overlay(null);
    }
  }

  private onSignal(s: SignalMessage): void {
    if (!this.current || this.current.pc !== s.pc || this.current.from !== s.from) {
      if (s.data.type !== 'offer') return; // leftovers of an older connection
      this.close();
      const pc = s.pc;
      const peer: PeerWithPc = new SimplePeer({
        initiator: false,
        trickle: true,
        config: { iceServers: this.session.iceServers },
      });
      const entry = { peer, pc, from: s.from };
      this.current = entry;
      peer.on('signal', (data: SimplePeer.SignalData) => {
        const envelope: SignalEnvelope = { pc, data: data as SignalData };
        this.session.socket.emit('signal', envelope);
      });
      peer.on('stream', (stream: MediaStream) => {
        if (this.current !== entry) return;
        ui.video.srcObject = stream;
        void ui.video.play().catch(() => undefined);
        this.showState();
      });
      const end = (): void => {
        if (this.current === entry) {
          this.current = null;
          ui.video.srcObject = null;
          this.refresh();
        }
      };
      peer.on('close', end);
      peer.on('error', (err: Error) => {
        console.warn('peer error', err.message);
        end();
      });
    }
    this.current.peer.signal(s.data as SimplePeer.SignalData);
  }

  /** Compares the video packets received and lost since the last check; says so when it is poor. */
  private async checkQuality(): Promise<void> {
    const pc = this.pc();
    if (!pc || !this.session.presence.live) return this.showQuality(false);
    let received = 0;
    let lost = 0;
    (await pc.getStats()).forEach(
      (r: { type: string; kind?: string; packetsReceived?: number; packetsLost?: number }) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          received += r.packetsReceived ?? 0;
          lost += r.packetsLost ?? 0;
        }
      },
    );
    const dr = received - this.quality.received;
    const dl = lost - this.quality.lost;
    this.quality.received = received;
    this.quality.lost = lost;
    // no packets at all while live also counts (the stream stalls on this connection)
    this.showQuality(dr + dl === 0 ? received > 0 : dl / (dr + dl) > POOR_LOSS);
  }

  private showQuality(poor: boolean): void {
    if (poor === this.quality.poor) return;
    this.quality.poor = poor;
    ui.status.textContent = poor ? 'Your connection looks weak: the picture may stutter.' : '';
  }

  pc(): RTCPeerConnection | null {
    return this.current?.peer._pc ?? null;
  }
}
