//! The HTML shell and the routes. The server renders this; the browser hydrates the same tree.

use crate::ui::dashboard::Dashboard;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/signalboard.css"/>
        <Title text="Signalboard"/>
        <Router>
            <Routes fallback=|| "Page not found.".into_view()>
                // Async: the page is sent once its data is in it, so the charts' pictures show at
                // once, even before (or without) the WebAssembly.
                <Route path=StaticSegment("") view=Dashboard ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}
