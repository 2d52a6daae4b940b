//! Load shedding (RES-7): a bound on the requests a part of the server serves at once. Past it,
//! a request is answered `503` with `Retry-After` at once instead of waiting for the database
//! with the others — under overload the database keeps serving the requests it already has,
//! and clients back off, rather than every request timing out together.

use crate::AppError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a shed client is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Shedder(Arc<Semaphore>);

impl Shedder {
    /// At most `in_flight` requests at once.
    pub fn new(in_flight: usize) -> Self {
        Self(Arc::new(Semaphore::new(in_flight)))
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(shedder, shed)`.
pub async fn shed(State(shedder): State<Shedder>, request: Request, next: Next) -> Response {
    let Ok(_permit) = shedder.0.try_acquire() else {
        tracing::warn!("shedding load: too many requests in flight");
        return AppError::Unavailable {
            retry_after: RETRY_AFTER,
        }
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Routes;
    use axum::body::Body;
    use http::StatusCode;
    use tokio::sync::{mpsc, oneshot};
    use tower::ServiceExt;

    /// One request held inside the handler fills a bound of one: the next is shed with
    /// `Retry-After`, and once the first is done requests are served again.
    #[tokio::test]
    async fn requests_past_the_bound_are_shed_until_one_finishes() {
        let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
        let (release_tx, release) = oneshot::channel::<()>();
        let release = Arc::new(std::sync::Mutex::new(Some(release)));
        let (router, _) = Routes::new()
            .route(crate::Access::Public, "GET /slow", move || {
                let entered_tx = entered_tx.clone();
                let release = release.lock().unwrap().take();
                async move {
                    entered_tx.send(()).unwrap();
                    if let Some(release) = release {
                        release.await.unwrap();
                    }
                    "done"
                }
            })
            .finish();
        let router = router.layer(axum::middleware::from_fn_with_state(Shedder::new(1), shed));
        let get = || Request::get("/slow").body(Body::empty()).unwrap();

        let held = tokio::spawn(router.clone().oneshot(get()));
        entered.recv().await.unwrap();
        let shed = router.clone().oneshot(get()).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");

        release_tx.send(()).unwrap();
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
        let again = router.oneshot(get()).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }
}
