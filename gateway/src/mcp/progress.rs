//! Progress notifications from an upstream, routed to the call that asked for them in the order
//! the upstream sent them.
//!
//! rmcp runs each incoming notification's handler in a task of its own, so a progress
//! notification handled there can reach the gateway after the answer that followed it on the
//! wire, and one that arrives before the call has subscribed is lost. Here [`ProgressTap`], a
//! transport wrapper, routes progress notifications as it reads them, in arrival order: when a
//! call's answer arrives, every notification the upstream sent before it is already in the
//! call's channel, and the call relays them all before it answers its client.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    JsonRpcMessage, JsonRpcNotification, ProgressNotificationParam, ProgressToken,
    ServerNotification,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleClient, RoleServer};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Most notifications kept for tokens no call has claimed yet (a call subscribes right after
/// sending its request, so only an upstream's very first notifications can land here).
const UNCLAIMED_LIMIT: usize = 32;

/// Where one upstream connection's progress notifications go, by the token the gateway gave
/// the request.
#[derive(Debug, Clone, Default)]
pub struct ProgressRoutes {
    inner: Arc<Mutex<Routes>>,
}

#[derive(Debug, Default)]
struct Routes {
    next_id: u64,
    calls: HashMap<ProgressToken, (u64, UnboundedSender<ProgressNotificationParam>)>,
    unclaimed: VecDeque<ProgressNotificationParam>,
}

impl ProgressRoutes {
    /// Forgets every route and unclaimed notification: a new connection numbers its tokens
    /// afresh.
    pub fn reset(&self) {
        let mut routes = self.lock();
        routes.calls.clear();
        routes.unclaimed.clear();
    }

    /// Routes the notifications for `token` to the returned receiver until the route is
    /// dropped; notifications that arrived before are delivered first.
    pub fn subscribe(
        &self,
        token: ProgressToken,
    ) -> (ProgressRoute, UnboundedReceiver<ProgressNotificationParam>) {
        let (sender, receiver) = unbounded_channel();
        let mut routes = self.lock();
        routes.next_id += 1;
        let id = routes.next_id;
        let (early, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut routes.unclaimed)
            .into_iter()
            .partition(|n| n.progress_token == token);
        routes.unclaimed = rest;
        for notification in early {
            let _ = sender.send(notification);
        }
        routes.calls.insert(token.clone(), (id, sender));
        let route = ProgressRoute {
            routes: self.clone(),
            token,
            id,
        };
        (route, receiver)
    }

    fn dispatch(&self, notification: ProgressNotificationParam) {
        let mut routes = self.lock();
        match routes.calls.get(&notification.progress_token) {
            // A call that did not want progress has dropped its receiver: nothing to do.
            Some((_, sender)) => drop(sender.send(notification)),
            None => {
                if routes.unclaimed.len() == UNCLAIMED_LIMIT {
                    routes.unclaimed.pop_front();
                }
                routes.unclaimed.push_back(notification);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A call's claim on its token; dropping it closes the call's channel.
#[derive(Debug)]
pub struct ProgressRoute {
    routes: ProgressRoutes,
    token: ProgressToken,
    id: u64,
}

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        let mut routes = self.routes.lock();
        // After a reconnection the token may belong to a newer call.
        if routes
            .calls
            .get(&self.token)
            .is_some_and(|(id, _)| *id == self.id)
        {
            routes.calls.remove(&self.token);
        }
    }
}

/// Passes an upstream call's progress to the client under the client's own token, until the
/// call's route is dropped and everything queued is sent.
pub async fn relay(
    mut progress: UnboundedReceiver<ProgressNotificationParam>,
    client: Peer<RoleServer>,
    token: ProgressToken,
) {
    while let Some(mut notification) = progress.recv().await {
        notification.progress_token = token.clone();
        let _ = client.notify_progress(notification).await;
    }
}

/// An upstream transport that takes progress notifications off the stream into
/// [`ProgressRoutes`] as they are read.
pub struct ProgressTap<T> {
    inner: T,
    routes: ProgressRoutes,
}

impl<T> ProgressTap<T> {
    pub fn new(inner: T, routes: ProgressRoutes) -> Self {
        Self { inner, routes }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for ProgressTap<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            match self.inner.receive().await? {
                JsonRpcMessage::Notification(JsonRpcNotification {
                    notification: ServerNotification::ProgressNotification(progress),
                    ..
                }) => self.routes.dispatch(progress.params),
                message => return Some(message),
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(token: &ProgressToken, value: f64) -> ProgressNotificationParam {
        ProgressNotificationParam::new(token.clone(), value)
    }

    #[test]
    fn early_notifications_wait_for_their_call_and_a_dropped_route_closes_the_channel() {
        let routes = ProgressRoutes::default();
        let mine = ProgressToken(rmcp::model::NumberOrString::Number(1));
        let other = ProgressToken(rmcp::model::NumberOrString::Number(2));
        routes.dispatch(progress(&mine, 1.0));
        routes.dispatch(progress(&other, 5.0));
        let (route, mut receiver) = routes.subscribe(mine.clone());
        routes.dispatch(progress(&mine, 2.0));
        drop(route);
        routes.dispatch(progress(&mine, 3.0));
        let mut seen = Vec::new();
        while let Ok(n) = receiver.try_recv() {
            seen.push(n.progress);
        }
        assert_eq!(seen, [1.0, 2.0]);
        // The channel is closed: a relay reading it ends.
        assert!(receiver.try_recv().is_err() && receiver.is_closed());
        assert_eq!(routes.lock().unclaimed.len(), 2, "other's and the late one");
    }

    #[test]
    fn a_stale_route_does_not_remove_a_newer_call_with_its_token() {
        let routes = ProgressRoutes::default();
        let token = ProgressToken(rmcp::model::NumberOrString::Number(0));
        let (stale, _old) = routes.subscribe(token.clone());
        routes.reset();
        let (_fresh, mut receiver) = routes.subscribe(token.clone());
        drop(stale);
        routes.dispatch(progress(&token, 1.0));
        assert_eq!(receiver.try_recv().map(|n| n.progress).ok(), Some(1.0));
    }

    #[test]
    fn unclaimed_notifications_are_bounded() {
        let routes = ProgressRoutes::default();
        for n in 0..(UNCLAIMED_LIMIT as i64 + 10) {
            routes.dispatch(progress(
                &ProgressToken(rmcp::model::NumberOrString::Number(n)),
                0.0,
            ));
        }
        assert_eq!(routes.lock().unclaimed.len(), UNCLAIMED_LIMIT);
    }
}
